"""Leases in Postgres: which controller process leads, decided by the database's clock.

Several controller processes may run against one federation; exactly one reconciles at a time. The
``leases`` table holds, per lease name, the holder and when it last renewed, with the duration it
is valid for. All times are the database's (``clock_timestamp()``), so the processes' clocks never
matter. What :class:`LeaseStore` guarantees:

* :meth:`~LeaseStore.acquire` succeeds only when the lease is free, expired, or already this
  holder's; the row is updated under a row lock, so two standbys never both win.
* :meth:`~LeaseStore.renew` succeeds only while the holder still holds it, unexpired; a holder that
  was paused past its lease gets False and must stop.
* **Fencing.** A leader's writes to the objects go through a storage made with
  :meth:`~federation.store.postgres.PostgresStorage.fenced`: each write transaction first calls
  ``federation_fence(lease, holder)`` (migrations 0002, 0003), which holds the lease row
  ``FOR KEY SHARE`` and raises unless the holder holds it now. A takeover locks that row
  ``FOR UPDATE`` before it updates it, so it waits for the old leader's write transactions in
  flight; each of them either commits before the takeover or fails with :class:`Fenced`. A renewal
  or a release updates no key, so it does not wait for them (with ``FOR SHARE`` it did, and a
  leader whose writes were held open lost its lease). A leader paused (SIGSTOP) past its lease
  cannot write when it resumes.
* A database that cannot be reached is :class:`~federation.apimachinery.errors.Unavailable`.
* :class:`LeaseRenewer` renews a held lease from a thread of its own, over a connection of its own,
  so a renewal never waits for a busy event loop: with 100 clusters (1,500 threads, collections of
  seconds) renewals made on the loop came late and the lease lapsed, 13 times in one benchmark run
  of ``tests.bench.controllers scale``, each time stopping and restarting every controller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.apimachinery import Unavailable, unavailable

log = logging.getLogger(__name__)

FENCED_SQLSTATE = "P0F01"

_ACQUIRE = text(
    """
    WITH inserted AS (
        INSERT INTO leases (name, holder, renew_time, duration_seconds)
        VALUES (:name, :holder, clock_timestamp(), :duration)
        ON CONFLICT (name) DO NOTHING
        RETURNING holder
    ),
    taken AS (
        UPDATE leases SET holder = :holder, renew_time = clock_timestamp(), duration_seconds = :duration
         WHERE name = :name AND NOT EXISTS (SELECT 1 FROM inserted)
           AND (holder = :holder OR renew_time + make_interval(secs => duration_seconds) <= clock_timestamp())
        RETURNING holder
    )
    SELECT holder FROM inserted UNION ALL SELECT holder FROM taken
    """
)
_LOCK = text("SELECT 1 FROM leases WHERE name = :name FOR UPDATE")
"""A takeover's first step: waits for every fenced write transaction in flight (FOR KEY SHARE)."""
_RENEW = text(
    """
    UPDATE leases SET renew_time = clock_timestamp(), duration_seconds = :duration
     WHERE name = :name AND holder = :holder
       AND renew_time + make_interval(secs => duration_seconds) > clock_timestamp()
    RETURNING holder
    """
)
_RELEASE = text(
    """
    UPDATE leases SET renew_time = to_timestamp(0)
     WHERE name = :name AND holder = :holder
    """
)
_READ = text(
    """
    SELECT holder,
           extract(epoch FROM renew_time + make_interval(secs => duration_seconds) - clock_timestamp())
      FROM leases WHERE name = :name
    """
)


class Fenced(Unavailable):
    """A write of a process that does not hold the controllers' lease (any more)."""


@dataclass(frozen=True)
class Fence:
    """What a fenced storage checks before each write transaction."""

    lease: str
    holder: str


@dataclass(frozen=True)
class LeaseState:
    holder: str
    remaining: float
    """Seconds until it expires (negative: expired)."""


class LeaseStore:
    """Acquire, renew, release and read leases (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _run(self, *statements: object, params: dict[str, object]) -> list[tuple[object, ...]]:
        """The statements in one transaction; the rows of the last."""
        rows: list[tuple[object, ...]] = []
        try:
            async with self._engine.begin() as conn:
                for statement in statements:
                    result = await conn.execute(statement, params)  # type: ignore[call-overload]
                    rows = [tuple(row) for row in result.fetchall()] if result.returns_rows else []
                return rows
        except (DBAPIError, OSError) as err:
            raise unavailable("the database cannot be reached") from err

    async def acquire(self, name: str, holder: str, *, duration: int) -> bool:
        rows = await self._run(_LOCK, _ACQUIRE, params={"name": name, "holder": holder, "duration": duration})
        return bool(rows)

    async def renew(self, name: str, holder: str, *, duration: int) -> bool:
        rows = await self._run(_RENEW, params={"name": name, "holder": holder, "duration": duration})
        return bool(rows)

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a standby need not wait for it to expire)."""
        await self._run(_RELEASE, params={"name": name, "holder": holder})

    @property
    def url(self) -> URL:
        """The database's URL, for a :class:`LeaseRenewer` (never logged: it may hold a password)."""
        return self._engine.url

    async def read(self, name: str) -> LeaseState | None:
        rows = await self._run(_READ, params={"name": name})
        if not rows:
            return None
        holder, remaining = rows[0]
        return LeaseState(str(holder), float(remaining))  # type: ignore[arg-type]


class LeaseRenewer:
    """Renews a held lease every third of its duration from a daemon thread, over its own
    connection (see the module docstring). ``valid_until`` is when the lease would lapse without a
    renewal, by ``time.monotonic()``; after each renewal ``on_renewed`` gets the new one (the start
    of that renewal plus the duration). ``on_lost`` is called once, with the reason, when a renewal
    is refused (another holder, or the lease lapsed) or none succeeded before the lease lapsed;
    the thread then ends. Both callbacks run on the renewing thread. :meth:`stop` ends it."""

    def __init__(
        self,
        url: URL,
        name: str,
        holder: str,
        *,
        duration: int,
        valid_until: float,
        on_renewed: Callable[[float], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self._url = url
        self._params: dict[str, object] = {"name": name, "holder": holder, "duration": duration}
        self._duration = duration
        self._valid_until = valid_until
        self._on_renewed = on_renewed
        self._on_lost = on_lost
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease renewal ({name})", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop renewing (the lease is left as it is) and wait up to ``timeout`` s for the thread."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        third = self._duration / 3
        wait_ms = max(int(third * 1000), 100)
        engine = create_engine(
            self._url,
            pool_size=1,
            max_overflow=0,
            connect_args={
                "connect_timeout": max(1, int(third)),
                "options": f"-c statement_timeout={wait_ms}",
            },
        )
        try:
            while not self._stopping.wait(third):
                if not self._renew(engine):
                    return
        finally:
            engine.dispose()

    def _renew(self, engine: Engine) -> bool:
        """One renewal, tried again until it succeeds or the lease lapses; False: lost (reported)."""
        while not self._stopping.is_set():
            started = time.monotonic()
            if started >= self._valid_until:
                self._on_lost("no renewal succeeded before the lease lapsed")
                return False
            try:
                with engine.begin() as conn:
                    renewed = bool(conn.execute(_RENEW, self._params).fetchall())
            except (DBAPIError, OSError) as err:
                log.warning(
                    "renewing the lease failed (%s); %.1f s left",
                    type(err).__name__,
                    self._valid_until - time.monotonic(),
                )
                self._stopping.wait(min(0.5, max(self._valid_until - time.monotonic(), 0)))
                continue
            if not renewed:
                self._on_lost("the renewal was refused: the lease lapsed or another process holds it")
                return False
            self._valid_until = started + self._duration
            self._on_renewed(self._valid_until)
            return True
        return True
