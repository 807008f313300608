"""The psycopg connections of :class:`~federation.store.postgres.PostgresStorage`.

The hot path uses psycopg directly (prepared statements, pipelining) on a small pool of autocommit
connections to the engine's database. Measured on 2 cores with the get query, SQLAlchemy's pool
checkout and Core execution cost more than the query itself (~3.4k gets/s through Core, ~5.5k/s on
psycopg behind SQLAlchemy's pool, ~13k/s on psycopg with this pool). The engine names the database
and sizes the pool (``pool_size``, default the engine's); the engine's own pool serves the other
store modules (tokens).

**Why not psycopg-pool** (issue 8): its ``AsyncConnectionPool``, wrapped to keep the guarantees
below, cost ~20 µs more CPU per checkout (42 against 22 µs), ~0.03 ms more Python CPU per get in
the storage alone (0.311 against 0.279 ms, 16 callers on 10 connections), and in the API benchmark
more server CPU per get and fewer gets/s in 6 of 7 interleaved pairs (docs/benchmarks.md,
"Connection pool: hand-written vs psycopg-pool"). What it would add over this pool (background
reconnection, idle connections closed, connections renewed hourly) this pool either does at
checkout (a dead connection is replaced, a new one made when none is idle) or does not need (ten
idle connections cost Postgres a few MB). Its own ``check`` would ping on every checkout and back
off 1 s, 2 s, ... between failed checks, and a request waits out its whole timeout (30 s by
default) while the database is down; both had to be worked around, which took ~100 lines of our
own around it.

What :class:`Connections` guarantees:

* **The database being unreachable is a 503.** Any connection failure (refused, broken, ended by
  the server) surfaces as :class:`~federation.apimachinery.errors.Unavailable` with Retry-After;
  the driver's message (it can name the server) goes to the log only.
* **No request fails for a connection that died while idle.** A pooled connection is checked
  before reuse: one the server ended (a restart, ``pg_terminate_backend``) is replaced, at no cost
  of a round trip; one idle longer than :data:`IDLE_CHECK_SECONDS` is also pinged first.
* **Connections go back clean.** A connection returned inside a transaction is rolled back (or
  discarded); a broken one is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.apimachinery import unavailable

_logger = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[TupleRow]

IDLE_CHECK_SECONDS = 2.0
"""A pooled connection idle longer than this is checked with a round trip before reuse."""


class Connections:
    """A small pool of autocommit psycopg connections (statements are prepared per connection)."""

    def __init__(self, connect_args: dict[str, Any], *, size: int) -> None:
        self._connect_args = connect_args
        self._idle: list[tuple[Connection, float]] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def dedicated(self) -> Connection:
        """A new autocommit connection outside the pool (the caller closes it)."""
        return await psycopg.AsyncConnection.connect(**self._connect_args, autocommit=True)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        if self._closed:
            raise RuntimeError("the storage is closed")
        async with self._slots:
            try:
                conn = await self._checkout()
                try:
                    yield conn
                finally:
                    await self._release(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                # The database is unreachable or the connection broke: the client may retry.
                # The driver's message can name the server; it goes to the log, not the client.
                _logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
                raise unavailable("the database is unavailable; retry shortly") from None

    async def _checkout(self) -> Connection:
        """An idle connection, checked first when it has been idle a while (the server may have
        restarted meanwhile: a dead one is replaced instead of failing a request), or a new one."""
        while self._idle:
            conn, idle_since = self._idle.pop()
            if _has_pending_input(conn):
                # An idle connection has nothing to read unless the server ended it (a FATAL
                # message, then EOF): a restart or an administrator's pg_terminate_backend.
                await conn.close()
                continue
            if time.monotonic() - idle_since < IDLE_CHECK_SECONDS:
                return conn
            try:
                await conn.execute("SELECT 1")
            except (psycopg.OperationalError, psycopg.InterfaceError):
                await conn.close()
                continue
            return conn
        return await self.dedicated()

    async def _release(self, conn: Connection) -> None:
        if not conn.closed and conn.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        ):
            try:
                await conn.execute("ROLLBACK")
            except psycopg.Error as exc:
                _logger.warning(
                    "discarding a database connection that failed to roll back: %s", type(exc).__name__
                )
                await conn.close()
        if (
            self._closed
            or conn.closed
            or conn.broken
            or conn.info.transaction_status != TransactionStatus.IDLE
        ):
            await conn.close()
        else:
            self._idle.append((conn, time.monotonic()))

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()


def _has_pending_input(conn: Connection) -> bool:
    """Whether an idle connection's socket is readable (a zero-timeout poll, no round trip)."""
    try:
        ready, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(ready)


def connect_args(engine: AsyncEngine) -> dict[str, Any]:
    """libpq parameters for the engine's database, without SQLAlchemy's own type adapters."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    if args:
        raise ValueError("unsupported engine URL: positional connect arguments")
    kwargs = dict(kwargs)
    kwargs.pop("context", None)
    return kwargs


def engine_pool_size(engine: AsyncEngine) -> int:
    """The size of the engine's own pool (10 when it has none), the default size of ours."""
    size = getattr(engine.pool, "size", None)
    return int(size()) if callable(size) else 10


def describe(exc: Exception) -> str:
    """An error for the log, without the row content some Postgres messages quote."""
    if isinstance(exc, psycopg.Error):
        primary = exc.diag.message_primary or str(exc).splitlines()[0]
        return f"{type(exc).__name__}: {primary}"
    return f"{type(exc).__name__}: {exc}"
