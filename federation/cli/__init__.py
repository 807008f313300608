"""``fedctl``: the command line of Federation, one typer app per noun."""

from __future__ import annotations

import typer

from federation.cli import db, server, tokens, traffic

app = typer.Typer(
    help="Federation: run applications across many Kubernetes clusters.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(tokens.app, name="token")
app.add_typer(traffic.app, name="traffic")
app.command("up")(server.up)
app.command("demo")(server.demo)

try:
    from federation.cli import sim
except ImportError:  # pragma: no cover - the simulator CLI lands separately
    sim = None  # type: ignore[assignment]
if sim is not None:
    app.add_typer(sim.app, name="sim")


def main() -> None:
    app()
