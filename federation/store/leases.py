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
  ``federation_fence(lease, holder)`` (migration 0002), which holds the lease row ``FOR SHARE`` and
  raises unless the holder holds it now. A takeover updates that row, so it waits for the old
  leader's write transactions in flight; each of them either commits before the takeover or fails
  with :class:`Fenced`. A leader paused (SIGSTOP) past its lease cannot write when it resumes.
* A database that cannot be reached is :class:`~federation.apimachinery.errors.Unavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.apimachinery import Unavailable, unavailable

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

    async def _run(self, statement: object, params: dict[str, object]) -> list[tuple[object, ...]]:
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(statement, params)  # type: ignore[call-overload]
                return [tuple(row) for row in result.fetchall()] if result.returns_rows else []
        except (DBAPIError, OSError) as err:
            raise unavailable("the database cannot be reached") from err

    async def acquire(self, name: str, holder: str, *, duration: int) -> bool:
        rows = await self._run(_ACQUIRE, {"name": name, "holder": holder, "duration": duration})
        return bool(rows)

    async def renew(self, name: str, holder: str, *, duration: int) -> bool:
        rows = await self._run(_RENEW, {"name": name, "holder": holder, "duration": duration})
        return bool(rows)

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a standby need not wait for it to expire)."""
        await self._run(_RELEASE, {"name": name, "holder": holder})

    async def read(self, name: str) -> LeaseState | None:
        rows = await self._run(_READ, {"name": name})
        if not rows:
            return None
        holder, remaining = rows[0]
        return LeaseState(str(holder), float(remaining))  # type: ignore[arg-type]
