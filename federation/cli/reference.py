"""``docs/cli.md``, generated from the commands: ``python -m federation.cli.reference > docs/cli.md``.

The reference cannot drift from the code: every command's help text (its docstring, with its
example), usage, arguments and options are read from the typer app, and a unit test fails when the
committed page differs from what this prints. Output is plain Markdown, independent of the terminal.
"""

from __future__ import annotations

from typing import Any

import typer.main

HEADER = """# fedctl command reference

Generated from the commands themselves by `python -m federation.cli.reference > docs/cli.md`;
`tests/unit/test_cli_reference.py` fails when this page is stale. `fedctl COMMAND --help` shows the
same. Commands that talk to the federation find it as kubectl does (the global options below, else
`$KUBECONFIG`, else `~/.kube/config`; the kubeconfig `fedctl up` writes works as is). Exit codes: 0
success, 1 error (one line on stderr; `--debug` adds the traceback), 2 usage.
"""


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _default(param: Any) -> str:
    default = getattr(param, "default", None)
    if default in (None, False, ()) or getattr(param, "is_flag", False) or callable(default):
        return ""
    return f"`{default}`"


def _params(command: Any) -> list[str]:
    rows = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            name = f"`{param.metavar or str(param.name).upper()}`"
        else:
            name = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        rows.append(f"| {name} | {_cell(getattr(param, 'help', ''))} | {_default(param)} |")
    if not rows:
        return []
    return ["| Argument or option | Meaning | Default |", "| --- | --- | --- |", *rows, ""]


def _help(command: Any) -> list[str]:
    text = (command.help or "").strip()
    lines = [line.strip() for line in text.splitlines()]
    return [line if not line.startswith("Example:") else f"Example: `{line[8:].strip()}`" for line in lines]


def _usage(command: Any) -> str:
    pieces = ["[OPTIONS]"]
    for param in command.params:
        if param.param_type_name != "argument":
            continue
        if param.metavar:
            pieces.append(param.metavar)
            continue
        name = str(param.name).upper() + ("..." if param.nargs == -1 else "")
        pieces.append(name if param.required else f"[{name}]")
    if getattr(command, "commands", None):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _section(command: Any, path: list[str], ctx: Any) -> list[str]:
    if getattr(command, "hidden", False):
        return []
    title = " ".join(["fedctl", *path])
    out = [f"## `{title}`", "", *_help(command), ""]
    out += [f"Usage: `{title} {_usage(command)}`", "", *_params(command)]
    for name in sorted(getattr(command, "commands", {})):
        sub = command.commands[name]
        out += _section(sub, [*path, name], sub.context_class(sub, info_name=name, parent=ctx))
    return out


def reference() -> str:
    """The whole page."""
    from federation.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="fedctl")
    lines = [HEADER, "## Global options", "", *_help(root), "", *_params(root)]
    for name in sorted(root.commands):  # type: ignore[attr-defined]
        sub = root.commands[name]  # type: ignore[attr-defined]
        lines += _section(sub, [name], sub.context_class(sub, info_name=name, parent=ctx))
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(reference(), end="")
