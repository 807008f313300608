"""docs/cli.md is what ``python -m federation.cli.reference`` prints now, and every command has an example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer.main

from federation.cli import app
from federation.cli.reference import reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _leaves(command: Any, path: list[str]) -> list[tuple[str, Any]]:
    children = getattr(command, "commands", None)
    if not children:
        return [(" ".join(path), command)]
    return [leaf for name, sub in sorted(children.items()) for leaf in _leaves(sub, [*path, name])]


def test_docs_cli_md_is_current() -> None:
    assert DOC.read_text() == reference(), (
        "docs/cli.md is stale: run `.venv/bin/python -m federation.cli.reference > docs/cli.md`"
    )


def test_the_client_commands_have_an_example_in_their_help() -> None:
    leaves = dict(_leaves(typer.main.get_command(app), ["fedctl"]))
    for name in ("apply", "delete", "get", "describe", "events"):
        assert "Example: fedctl " in (leaves[f"fedctl {name}"].help or ""), name
