"""The schema exists only through Alembic migrations, and they go both ways.

Upgrading an empty database gives exactly the tables ``federation.store.models`` describes (Alembic's
autogenerate comparison finds nothing to add), and downgrading to base leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from federation.store import migrate
from federation.store.engine import database_url as database_url_of
from federation.store.models import metadata

EXPECTED_TABLES = {"alembic_version", "changes", "leases", "objects", "tokens"}


def relations(url: str) -> set[str]:
    """Tables, views and sequences in the public schema."""
    libpq = database_url_of(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' UNION ALL"
            " SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public'"
        ).fetchall()
    return {name for (name,) in rows}


@pytest.fixture
def empty_url(make_database: Callable[..., str]) -> str:
    return make_database(migrated=False)


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    assert migrate.current(empty_url) is None
    assert relations(empty_url) == set()

    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()
    assert relations(empty_url) == EXPECTED_TABLES | {"resource_version_seq"}

    migrate.downgrade(empty_url, "base")
    assert relations(empty_url) == set()
    assert migrate.current(empty_url) is None

    migrate.upgrade(empty_url, "head")
    assert migrate.current(empty_url) == migrate.head()
    assert relations(empty_url) >= EXPECTED_TABLES


def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_engine(database_url_of(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
