"""The psycopg connections of :class:`~federation.store.postgres.PostgresStorage`.

The hot path uses psycopg directly (prepared statements, pipelining) on a small pool of autocommit
connections to the engine's database. Measured on 2 cores with the get query, SQLAlchemy's pool
checkout and Core execution cost more than the query itself (~3.4k gets/s through Core, ~5.5k/s on
psycopg behind SQLAlchemy's pool, ~13k/s on psycopg with a small pool of our own). The engine names
the database and sizes the pool (``pool_size``, default the engine's); the engine's own pool serves
the other store modules (tokens).

The pool is ``psycopg_pool``'s :class:`~psycopg_pool.AsyncConnectionPool` (issue 8): it reconnects
in the background, closes connections beyond the first left unused for :data:`MAX_IDLE_SECONDS` and
renews each after an hour. It replaced a hand-written pool; measured against it (docs/benchmarks.md,
"Connection pool: hand-written vs psycopg-pool"), the project's benchmark saw no difference beyond
its noise, and the storage alone ~20 µs more CPU per checkout.

What :class:`Connections` guarantees, around the library:

* **The database being unreachable is a 503, at once.** Any connection failure (refused, broken,
  ended by the server, no connection within :data:`CHECKOUT_TIMEOUT`) surfaces as
  :class:`~federation.apimachinery.errors.Unavailable` with Retry-After; the driver's message (it
  can name the server) goes to the log only. Once the pool has failed to connect for
  :data:`RECONNECT_TIMEOUT`, requests wait at most :data:`DOWN_CHECKOUT_TIMEOUT` (the library
  alone would hold each one for its whole timeout); the first connection made ends that.
* **No request fails for a connection that died while idle.** A pooled connection is checked
  before reuse: one the server ended (a restart, ``pg_terminate_backend``) is replaced, at no cost
  of a round trip; one idle longer than :data:`IDLE_CHECK_SECONDS` is also pinged first. This is
  done here rather than with the library's ``check`` callback, which pings on every checkout and
  backs off (1 s, 2 s, ...) between failed checks, so that a restart's dead connections would make
  the first request wait seconds.
* **Connections go back clean.** A connection returned inside a transaction is rolled back (or
  discarded); a broken one is replaced by the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.apimachinery import unavailable

_logger = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[TupleRow]

IDLE_CHECK_SECONDS = 2.0
"""A pooled connection idle longer than this is checked with a round trip before reuse."""
CHECKOUT_TIMEOUT = 5.0
"""The longest a request waits for a connection before it is answered 503."""
CHECKOUT_SLICE = 0.25
"""A waiting request looks this often whether the database has been found unreachable."""
DOWN_CHECKOUT_TIMEOUT = 0.2
"""The longest a request waits for a connection while the database is known to be unreachable:
its 503 comes at once (and the wait lets the pool try a connection, which ends the outage)."""
RECONNECT_TIMEOUT = 1.0
"""How long the pool retries a lost connection in the background before it gives up and the
database counts as unreachable (a request that then finds the pool short makes the pool try a new
connection at once, so recovery is not delayed by the pool's backoff)."""
MAX_IDLE_SECONDS = 60.0
"""A connection beyond the first unused this long is closed."""


class Connections:
    """A pool of autocommit psycopg connections (statements are prepared per connection), kept by
    ``psycopg_pool``'s :class:`~psycopg_pool.AsyncConnectionPool`: it reconnects in the background,
    closes connections idle longer than ``max_idle`` beyond ``min_size`` and renews each after
    ``max_lifetime``. Around it, this class checks connections before reuse (without the pool's
    backoff between failed checks, so a restart's dead connections cost no request a wait) and
    fails fast while the database is known to be down."""

    def __init__(self, connect_args: dict[str, Any], *, size: int) -> None:
        self._connect_args = connect_args
        self._pool = AsyncConnectionPool[Connection](
            kwargs={**connect_args, "autocommit": True},
            min_size=1,
            max_size=max(size, 1),
            open=False,
            configure=self._connected,
            reconnect_failed=self._unreachable,
            timeout=CHECKOUT_TIMEOUT,
            max_idle=MAX_IDLE_SECONDS,
            reconnect_timeout=RECONNECT_TIMEOUT,
            name="federation-store",
        )
        # Callers beyond the pool's size wait here, not in the pool: its waiting path (a condition
        # and a wait_for per caller) cost ~0.1 ms of CPU per get with 16 callers on 10 connections.
        self._slots = asyncio.Semaphore(max(size, 1))
        self._returned_at: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
        self._opened = False
        self._closed = False
        self._down = False

    async def dedicated(self) -> Connection:
        """A new autocommit connection outside the pool (the caller closes it)."""
        return await psycopg.AsyncConnection.connect(**self._connect_args, autocommit=True)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        if self._closed:
            raise RuntimeError("the storage is closed")
        if not self._opened:
            await self._pool.open()  # idempotent; here, not in __init__, to be on the running loop
            self._opened = True
        try:
            async with self._slots:
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

    async def _connected(self, conn: Connection) -> None:
        """The pool made a connection: the database is reachable."""
        self._down = False

    async def _unreachable(self, pool: AsyncConnectionPool[Connection]) -> None:
        """The pool failed to connect for :data:`RECONNECT_TIMEOUT`: the database is down."""
        self._down = True

    async def _checkout(self) -> Connection:
        """A pooled connection that is still alive. One the server ended while it was idle is
        closed and handed back (the pool replaces it in the background) and the next one taken.

        While the pool cannot connect (:meth:`_unreachable`), a request waits at most
        :data:`DOWN_CHECKOUT_TIMEOUT`, so its 503 comes at once; otherwise up to
        :data:`CHECKOUT_TIMEOUT`, in slices, so a request already waiting when the database goes
        away gets its 503 as soon as that is known."""
        deadline = time.monotonic() + CHECKOUT_TIMEOUT
        while True:
            slice_ = DOWN_CHECKOUT_TIMEOUT if self._down else CHECKOUT_SLICE
            try:
                conn = await self._pool.getconn(timeout=min(slice_, deadline - time.monotonic()))
            except PoolTimeout:
                if self._down or time.monotonic() >= deadline:
                    raise
                continue
            if await self._alive(conn):
                return conn
            await conn.close()
            await self._pool.putconn(conn)

    async def _alive(self, conn: Connection) -> bool:
        if _has_pending_input(conn):
            # An idle connection has nothing to read unless the server ended it (a FATAL
            # message, then EOF): a restart or an administrator's pg_terminate_backend.
            return False
        returned = self._returned_at.get(conn)
        if returned is None or time.monotonic() - returned < IDLE_CHECK_SECONDS:
            return True
        try:
            await AsyncConnectionPool.check_connection(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            return False
        return True

    async def _release(self, conn: Connection) -> None:
        if not conn.closed and conn.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        ):
            # Rolled back here, quietly: the pool would too, but log a warning for each.
            try:
                await conn.execute("ROLLBACK")
            except psycopg.Error as exc:
                _logger.warning(
                    "discarding a database connection that failed to roll back: %s", type(exc).__name__
                )
                await conn.close()
        self._returned_at[conn] = time.monotonic()
        await self._pool.putconn(conn)

    async def close(self) -> None:
        self._closed = True
        await self._pool.close()


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
