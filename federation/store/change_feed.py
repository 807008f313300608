"""The change feed: follows the ``changes`` log of the database into one process's watch cache.

Every API server process on a database runs one feed, so each sees every change whatever process
wrote it. What :class:`ChangeFeed` guarantees:

* **No change skipped, none twice, in version order.** Writers make version order commit order
  (:mod:`federation.store.group_commit`), so reading ``changes WHERE resource_version > last`` in
  version order never skips a late commit. A gap in the versions is a rolled-back write, or history
  compacted before this feed read it; only the second loses changes, and then the cache is reset so
  watches from before the gap get 410 Gone and relist instead of silently missing changes.
* **Watches resume across a restart.** :meth:`ChangeFeed.start` loads the newest ``window``
  changes before following. A change that cannot be decoded (its key is gone) ends that window:
  watches from before it get Gone rather than a history with a hole.
* **It keeps following.** The feed LISTENs on ``federation_changes`` on a connection of its own and
  reads on every notification, and every ``poll_interval`` in case one is lost. A lost connection is
  re-made with backoff (50 ms doubling to 5 s); a change that cannot be decoded is retried (holding
  watches back) until it is fixed, e.g. by configuring the missing key. :attr:`ChangeFeed.error` is
  the last failure, None while healthy (``/readyz`` reads it).
* **Reads are batched under load.** It reads at most every :data:`FEED_INTERVAL`: under load,
  commits come every few milliseconds (and several API processes double them); fewer, larger
  reads cost less, for a few ms of watch latency (measured in 1310c50, docs/benchmarks.md).
* **Compaction.** Every ``compact_interval`` seconds it deletes change rows more than ``retention``
  versions behind the newest; the newest row always stays. A process whose feed fell further behind
  than that would miss changes (and gets the reset above); the default (100k versions) is most of a
  minute of writes at full speed, far beyond any healthy lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import psycopg
from psycopg.rows import TupleRow

from federation.apimachinery import Change, InternalError, WatchCache
from federation.store.connections import Connection, Connections, describe
from federation.store.rows import RowCodec
from federation.store.statements import (
    CHANGES_AFTER,
    COMPACT_CHANGES,
    LISTEN,
    NEWEST_CHANGES,
    OLDEST_CHANGE,
)

_logger = logging.getLogger(__name__)

FEED_INTERVAL = 0.005
"""The feed reads new changes at most this often (seconds)."""
READ_BATCH = 1000
"""The most change rows one read takes."""


class ChangeFeed:
    """One process's follower of the change log, and the watch cache it fills."""

    def __init__(
        self,
        connections: Connections,
        codec: RowCodec,
        *,
        window: int,
        retention: int,
        poll_interval: float,
        compact_interval: float,
    ) -> None:
        self._connections = connections
        self._codec = codec
        self._window = window
        self._retention = retention
        self._poll_interval = poll_interval
        self._compact_interval = compact_interval
        self._version = 0
        self._task: asyncio.Task[None] | None = None
        self.cache: WatchCache | None = None
        """The watch cache, from :meth:`start` on."""
        self.error: Exception | None = None
        """The last error the feed hit (it keeps retrying); None when healthy."""

    @property
    def started(self) -> bool:
        return self._task is not None

    async def start(self) -> WatchCache:
        """Load the watch window and start following. Call once."""
        async with self._connections.connection() as conn:
            cur = await conn.execute(NEWEST_CHANGES, (self._window,))
            rows = await cur.fetchall()
        self.cache = self._prime(rows)
        self._version = rows[-1][0] if rows else 0
        self._task = asyncio.create_task(self._follow(), name="federation-watch-feed")
        return self.cache

    async def stop(self) -> None:
        """Stop following; open watches end. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.cache is not None:
            self.cache.close()

    async def compact(self) -> int:
        """Delete change rows more than ``retention`` versions behind the newest; returns how many."""
        async with self._connections.connection() as conn:
            cur = await conn.execute(COMPACT_CHANGES, (self._retention,))
            return cur.rowcount

    def _prime(self, rows: Sequence[TupleRow]) -> WatchCache:
        """A watch cache holding ``rows`` (the newest changes, oldest first), up to the newest one
        that cannot be decoded."""
        changes: list[Change] = []
        horizon = rows[0][0] - 1 if rows else 0
        for row in reversed(rows):
            try:
                changes.append(self._codec.change(row))
            except InternalError:
                horizon = row[0]
                break
        cache = WatchCache(capacity=self._window, horizon=horizon)
        for change in reversed(changes):
            cache.append(change)
        return cache

    async def _follow(self) -> None:
        """LISTEN, then read new changes on every notification or poll tick; never gives up."""
        delay = 0.05
        next_compaction = time.monotonic() + self._compact_interval
        while True:
            try:
                async with await self._connections.dedicated() as conn:
                    await conn.execute(LISTEN)
                    while True:
                        await self._read_changes(conn)
                        self.error, delay = None, 0.05
                        if time.monotonic() >= next_compaction:
                            next_compaction = time.monotonic() + self._compact_interval
                            deleted = (await conn.execute(COMPACT_CHANGES, (self._retention,))).rowcount
                            _logger.debug("compacted %d change rows", deleted)
                        read_at = time.monotonic()
                        async for _ in conn.notifies(timeout=self._poll_interval, stop_after=1):
                            pass
                        wait = read_at + FEED_INTERVAL - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
            # Expected failures (a lost connection, a change that cannot be decoded) are logged
            # when they start, unexpected ones every time.
            except (psycopg.Error, OSError, InternalError) as exc:
                if self._failed(exc):
                    _logger.error("watch feed failed, retrying: %s", describe(exc))
            except Exception as exc:
                self._failed(exc)
                _logger.exception("watch feed failed unexpectedly (a bug), retrying")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _failed(self, exc: Exception) -> bool:
        """Record the feed's failure; True when it is a new kind of failure."""
        new = self.error is None or type(self.error) is not type(exc)
        self.error = exc
        return new

    async def _read_changes(self, conn: Connection) -> None:
        assert self.cache is not None
        while True:
            cur = await conn.execute(CHANGES_AFTER, (self._version, READ_BATCH), prepare=True)
            rows = await cur.fetchall()
            if rows and rows[0][0] > self._version + 1:
                # A gap: a rolled-back version, or history compacted (by another process) before
                # this feed read it. Only the second loses changes: then nothing at or below the
                # feed's position is left, and watches from before the gap must get 410.
                oldest = (await (await conn.execute(OLDEST_CHANGE)).fetchone() or (None,))[0]
                if oldest is not None and oldest > self._version:
                    _logger.warning(
                        "watch feed fell behind compaction (at %d, oldest change %d): watches restart",
                        self._version,
                        oldest,
                    )
                    self.cache.reset(rows[0][0] - 1)
            for row in rows:
                self.cache.append(self._codec.change(row))
                self._version = row[0]
            if len(rows) < READ_BATCH:
                return
