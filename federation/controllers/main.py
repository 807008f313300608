"""``federation-controller``: the controllers' process (the controllers arrive with later issues)."""

from __future__ import annotations

import sys


def main() -> None:
    print("federation-controller: no controllers yet; `fedctl up` runs the API server", file=sys.stderr)
    raise SystemExit(2)
