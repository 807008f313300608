"""Schema migrations as a library call: what ``fedctl db upgrade`` and the tests run.

There is no ``alembic.ini``. The Alembic configuration is built here, with the migration scripts
found in the installed ``federation.migrations`` package, so migrations work from a wheel as well
as from a checkout. The database URL is always the caller's (from settings); it is never logged.
Migrations run on a synchronous psycopg connection, one transaction per revision.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from federation.store.engine import database_url

VERSION_TABLE = "alembic_version"


def script_location() -> Path:
    """The folder holding ``env.py`` and ``versions/`` (the installed ``federation.migrations``)."""
    package = importlib.import_module("federation.migrations")
    if package.__file__ is None:
        raise RuntimeError("federation.migrations is not installed as a folder")
    return Path(package.__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _connected(url: str | URL) -> Iterator[Connection]:
    engine = create_engine(database_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest)."""
    with _connected(url) as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision``; ``"base"`` leaves no table behind,
    not even Alembic's own version table."""
    with _connected(url) as connection:
        command.downgrade(alembic_config(connection), revision)
        if revision == "base":
            connection.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
        connection.commit()


def current(url: str | URL) -> str | None:
    """The revision the database at ``url`` is at, or None for an unmigrated database."""
    with _connected(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    """The newest revision the installed migrations know."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError("no migrations found in " + str(script_location()))
    return revision
