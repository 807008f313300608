"""Alembic environment: runs migrations on the connection :mod:`federation.store.migrate` hands in.

The URL never comes from a file: the caller (``fedctl db upgrade``, tests) takes it from settings,
opens the connection and passes it as ``config.attributes["connection"]``. For ``--sql`` (offline)
runs it passes ``config.attributes["url"]`` instead.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from federation.store.models import metadata

config = context.config


def _configure(**kwargs: Any) -> None:
    context.configure(target_metadata=metadata, compare_type=True, transaction_per_migration=True, **kwargs)


def run_offline() -> None:
    _configure(url=config.attributes["url"], literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection: Connection = config.attributes["connection"]
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
