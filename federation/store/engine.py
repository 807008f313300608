"""How Federation connects to Postgres: one async SQLAlchemy engine per process, over psycopg 3.

People write database URLs the way libpq does (``postgresql://user@host/db``, ``postgres://...``);
SQLAlchemy needs the driver named. :func:`database_url` turns any of those into the one form we use,
``postgresql+psycopg://``, and :func:`make_engine` builds the pooled async engine every store module
shares. Engines are made once by the process's entry point and passed down (no module-level engine).
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DRIVER = "postgresql+psycopg"

_ACCEPTED = frozenset({"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg_async"})


def database_url(url: str | URL) -> URL:
    """``url`` with the psycopg 3 driver named; refuses other databases and other drivers.

    The error names only the scheme, never the URL, which may hold a password.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername not in _ACCEPTED:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use postgresql://")
    return parsed.set(drivername=DRIVER)


def make_engine(
    url: str | URL, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False
) -> AsyncEngine:
    """A pooled async engine for ``url`` (``postgresql://`` or ``postgresql+psycopg://``).

    ``pool_size`` connections are kept open; up to ``max_overflow`` more are made under load. Dispose
    of it with ``await engine.dispose()`` when the process is done with the database.
    """
    return create_async_engine(
        database_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        echo=echo,
    )
