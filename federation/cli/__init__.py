"""``fedctl``: the command line of Federation, one typer app per noun.

The callback holds the options every client command shares (where the federation is, as kubectl
finds it: see :mod:`federation.cli.client`); :func:`main` turns any failure into one line on stderr
and an exit code (0 ok, 1 error, 2 usage), with a traceback only under ``--debug``.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from federation.cli import (
    applying,
    clusters,
    db,
    demo,
    describing,
    eventing,
    planning,
    reading,
    server,
    spread,
    tokens,
    traffic,
)
from federation.cli.client import CliError, GlobalOptions

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    ctx: typer.Context,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            help="Kubeconfig to use (else $KUBECONFIG's first file, else ~/.kube/config); "
            "fedctl up writes DATA_DIR/federation.kubeconfig.",
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Kubeconfig context (else its current-context).")
    ] = None,
    server_url: Annotated[
        str | None, typer.Option("--server", help="The federation's API URL, over the kubeconfig's.")
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="Bearer token, over the kubeconfig's.")] = None,
    certificate_authority: Annotated[
        Path | None,
        typer.Option("--certificate-authority", help="CA file to trust the server with (PEM)."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure-skip-tls-verify", help="Do not verify the server's certificate (unsafe)."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback when something fails.")] = False,
) -> None:
    """Federation: run applications across many Kubernetes clusters.

    Example: fedctl --kubeconfig ./data/federation.kubeconfig get rs -A
    """
    ctx.obj = GlobalOptions(
        kubeconfig=kubeconfig,
        context=context,
        server=server_url,
        token=token,
        certificate_authority=certificate_authority,
        insecure=insecure,
        debug=debug,
    )


app.add_typer(db.app, name="db")
app.add_typer(tokens.app, name="token")
app.add_typer(traffic.app, name="traffic")
app.add_typer(clusters.app, name="cluster")
app.command("up")(server.up)
app.command("demo")(demo.demo)
app.command("apply")(applying.apply)
app.command("delete")(applying.delete)
app.command("get")(reading.get)
app.command("describe")(describing.describe)
app.command("events")(eventing.events)
app.command("spread")(spread.spread)
app.command("plan")(planning.plan_command)

try:
    from federation.cli import sim
except ImportError:  # pragma: no cover - the simulator CLI lands separately
    sim = None  # type: ignore[assignment]
if sim is not None:
    app.add_typer(sim.app, name="sim")


def main() -> None:
    """Run ``fedctl``: a failure is one line on stderr, and the exit code says what kind."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except CliError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the last resort: one line, not a traceback
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (--debug shows where)"
        print(f"error: unexpected {type(err).__name__}: {err}{hint}", file=sys.stderr)
        sys.exit(1)
