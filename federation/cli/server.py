"""``fedctl up`` and ``fedctl demo``: the whole federation in one foreground process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from federation.settings import describe_error

WORKERS_OPTION = typer.Option(
    "--workers",
    min=1,
    help="Processes serving the API, one per core is the most useful (default FEDERATION_WORKERS or 1).",
)


def up(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Where the database, keys, token and kubeconfig live (default ./data)."
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="HTTPS port (default 6443; 0 picks a free one).")
    ] = None,
    workers: Annotated[int | None, WORKERS_OPTION] = None,
) -> None:
    """Run the federation API server (and its embedded Postgres) until Ctrl-C.

    Example: fedctl up --data-dir ./data --port 6443 --workers 2
    then: KUBECONFIG=./data/federation.kubeconfig kubectl get ns
    """
    _run(data_dir, port, workers)


def _run(data_dir: Path | None, port: int | None, workers: int | None) -> None:
    from federation.api import run_up

    try:
        run_up(data_dir=data_dir, port=port, workers=workers)
    except ValidationError as err:
        typer.echo(f"error: {describe_error(err)}", err=True)
        raise typer.Exit(1) from None
    except (OSError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def demo(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data dir (default ./data).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="HTTPS port (default 6443).")] = None,
    workers: Annotated[int | None, WORKERS_OPTION] = None,
) -> None:
    """The demo: for now the federation API server with its embedded Postgres (see `fedctl up`)."""
    _run(data_dir, port, workers)
