"""``fedctl up`` and ``fedctl demo``: the whole federation in one foreground process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from federation.cli.controlling import Controllers
from federation.settings import ControllerSettings, DatabaseSettings, TrafficSettings, describe_error

NO_CONTROLLERS_OPTION = typer.Option(
    "--no-controllers",
    help="Serve the API only, as FEDERATION_CONTROLLERS=false does (for a separate federation-controller).",
)
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
    no_controllers: Annotated[bool, NO_CONTROLLERS_OPTION] = False,
) -> None:
    """Run the federation API server (and its embedded Postgres) with the controllers, until Ctrl-C.

    Example: fedctl up --data-dir ./data --port 6443 --workers 2
    then: KUBECONFIG=./data/federation.kubeconfig kubectl get ns
    """
    _run(data_dir, port, workers, controllers=not no_controllers)


def _run(data_dir: Path | None, port: int | None, workers: int | None, *, controllers: bool) -> None:
    from federation.api import run_up

    try:
        settings = ControllerSettings()
        traffic = TrafficSettings()
        work_dir = (data_dir or DatabaseSettings().data_dir).resolve() / "traffic"
        companion = (
            Controllers(settings, traffic=traffic, work_dir=work_dir)
            if controllers and settings.controllers
            else None
        )
        run_up(data_dir=data_dir, port=port, workers=workers, companion=companion)
    except ValidationError as err:
        typer.echo(f"error: {describe_error(err)}", err=True)
        raise typer.Exit(1) from None
    except (OSError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
