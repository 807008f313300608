"""Targets for API worker processes started by tests (a spawned worker imports its target by name)."""

from __future__ import annotations

import os


def say(text: str) -> None:
    """Print ``text`` as one line in one write, so two workers' lines never interleave on a pipe."""
    os.write(1, (text + "\n").encode())
