"""``fedctl token``: API tokens, stored hashed; a new token is printed once and never again.

This is an operator's command: it talks to the database (like ``fedctl db``), so it works before any
admin token exists.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from federation.apimachinery import ROLES
from federation.settings import DatabaseSettings

app = typer.Typer(help="Create, list and delete API tokens.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data dir of the embedded Postgres (used when FEDERATION_DATABASE_URL is unset)."
    ),
]


def _with_store(data_dir: Path | None, action: str, *args: str) -> object:
    from federation.api import Paths, database
    from federation.store import TokenStore, make_engine

    settings = DatabaseSettings()

    async def run(url: str) -> object:
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            return await getattr(TokenStore(engine), action)(*args)
        finally:
            await engine.dispose()

    with database(settings, Paths((data_dir or settings.data_dir).resolve())) as url:
        return asyncio.run(run(url))


@app.command()
def create(
    role: Annotated[str, typer.Option("--role", help="viewer, editor or admin.")],
    name: Annotated[str | None, typer.Option("--name", help="A name to know the token by.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a token and print it (once: only its hash is kept).

    Example: fedctl token create --role viewer --name dashboards
    """
    if role not in ROLES:
        typer.echo(f"error: --role must be one of {', '.join(ROLES)}, not {role!r}", err=True)
        raise typer.Exit(2)
    import secrets

    token = _with_store(data_dir, "create", name or f"{role}-{secrets.token_hex(3)}", role)
    typer.echo(str(token))


@app.command("list")
def list_tokens(data_dir: DataDir = None) -> None:
    """List tokens by name and role (never the tokens themselves).

    Example: fedctl token list --data-dir ./data
    """
    infos = _with_store(data_dir, "list")
    assert isinstance(infos, list)
    for info in infos:
        typer.echo(f"{info.name}\t{info.role}")


@app.command()
def delete(name: Annotated[str, typer.Argument(help="Token name.")], data_dir: DataDir = None) -> None:
    """Delete a token by name; requests with it fail from then on.

    Example: fedctl token delete ci-reader --data-dir ./data
    """
    _with_store(data_dir, "delete", name)
    typer.echo(f'token "{name}" deleted')
