"""``fedctl db``: schema migrations, run as their own step before servers start.

Heavy imports (alembic, the store) happen inside the commands, so ``fedctl`` starts fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from federation.settings import DatabaseSettings

app = typer.Typer(help="Manage the federation database schema.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data dir of the embedded Postgres (used when FEDERATION_DATABASE_URL is unset)."
    ),
]


@app.command()
def upgrade(
    data_dir: DataDir = None, revision: Annotated[str, typer.Option(help="Target revision.")] = "head"
) -> None:
    """Apply the migrations up to REVISION (default: the newest).

    Example: FEDERATION_DATABASE_URL=postgresql://fed@db/fed fedctl db upgrade
    """
    from federation.api import Paths, database
    from federation.store import migrate

    settings = DatabaseSettings()
    with database(settings, Paths((data_dir or settings.data_dir).resolve())) as url:
        migrate.upgrade(url, revision)
        typer.echo(f"database at revision {migrate.current(url)}")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' for an empty database.")],
    data_dir: DataDir = None,
) -> None:
    """Revert the migrations down to REVISION.

    Example: fedctl db downgrade base --data-dir ./data
    """
    from federation.api import Paths, database
    from federation.store import migrate

    settings = DatabaseSettings()
    with database(settings, Paths((data_dir or settings.data_dir).resolve())) as url:
        migrate.downgrade(url, revision)
        typer.echo(f"database at revision {migrate.current(url) or 'base'}")


@app.command()
def current(data_dir: DataDir = None) -> None:
    """Print the revision the database is at.

    Example: FEDERATION_DATABASE_URL=postgresql://fed@db/fed fedctl db current
    """
    from federation.api import Paths, database
    from federation.store import migrate

    settings = DatabaseSettings()
    with database(settings, Paths((data_dir or settings.data_dir).resolve())) as url:
        typer.echo(migrate.current(url) or "base")
