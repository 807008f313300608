"""The work queue and watch feed that drive the simulator's controllers.

Each simulated cluster runs its controllers (ReplicaSets, scheduler and kubelet, node pool, load
balancers) the way controller-runtime runs reconcilers: watches on the cluster's own storage turn
changes into keys, a queue de-duplicates the keys, and one worker calls ``reconcile(key)``, which
reads the current state fresh and acts. The queue owns retries and delays; reconcilers never sleep.

Guarantees:

* a key is never reconciled twice at once (one worker per queue), and a key added while queued is
  queued once;
* ``Result(requeue_after=s)`` runs the key again after ``s`` seconds (the earliest request wins);
* a reconcile that raises is logged once with its key and retried with per-key exponential backoff
  (5 ms doubling to :data:`MAX_BACKOFF`), and the backoff is forgotten on success;
* a watch that ends (its subscriber fell behind, or its version left the window) is reopened from the
  storage's current version after enqueuing the resync keys, so no change is missed for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from federation.apimachinery.errors import ApiError, Gone
from federation.apimachinery.resources import ResourceType
from federation.apimachinery.storage import Storage, WatchEvent

log = logging.getLogger(__name__)

BASE_BACKOFF = 0.005
MAX_BACKOFF = 5.0
WATCH_RESTART_DELAY = 0.05

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Result:
    requeue_after: float | None = None
    """Run the key again after this many seconds (None: only when something changes)."""


class WorkQueue(Generic[K]):
    def __init__(self, reconcile: Callable[[K], Awaitable[Result]], *, name: str) -> None:
        self._reconcile = reconcile
        self.name = name
        self._queued: dict[K, None] = {}
        self._wakeup = asyncio.Event()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[K, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    def add(self, key: K) -> None:
        if self._closed:
            return
        self._queued[key] = None
        self._idle.clear()
        self._wakeup.set()

    def add_all(self, keys: Iterable[K]) -> None:
        for key in keys:
            self.add(key)

    def add_after(self, key: K, delay: float) -> None:
        if self._closed:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= due:
                return
            existing[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    @property
    def pending_timers(self) -> int:
        return len(self._timers)

    async def wait_idle(self) -> None:
        """Until nothing is queued or running (timers may still be pending)."""
        await self._idle.wait()

    async def run(self) -> None:
        """The worker: runs until :meth:`close`, or until cancelled."""
        while not self._closed:
            if not self._queued:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key = next(iter(self._queued))
            del self._queued[key]
            try:
                result = await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except ApiError as err:
                self._retry(key, f"{err.code} {err.reason}: {err.message}")
            except Exception:
                if key not in self._failures:  # logged once per run of failures, then retried quietly
                    log.exception("%s: reconcile of %r failed; retrying with backoff", self.name, key)
                self._retry(key, None)
            else:
                self._failures.pop(key, None)
                if result.requeue_after is not None:
                    self.add_after(key, result.requeue_after)

    def _retry(self, key: K, why: str | None) -> None:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        delay = min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (count - 1))
        if why is not None and count == 1:
            log.info("%s: reconcile of %r: %s; retrying", self.name, key, why)
        elif count > 1:
            log.debug("%s: reconcile of %r failed %d times; next try in %.3fs", self.name, key, count, delay)
        self.add_after(key, delay)

    def close(self) -> None:
        self._closed = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._queued.clear()
        self._wakeup.set()
        self._idle.set()


async def feed(
    storage: Storage,
    rt: ResourceType,
    queue: WorkQueue[K],
    to_keys: Callable[[WatchEvent], Iterable[K]],
    resync: Callable[[], Awaitable[Iterable[K]]],
) -> None:
    """Feed ``queue`` from a watch on every ``rt`` object until cancelled.

    Before each (re)start of the watch, ``resync()`` names the keys to reconcile in any case (the
    state may have changed while no watch was open)."""
    while True:
        since = await storage.current_version()
        queue.add_all(await resync())
        try:
            async for event in storage.watch(rt, None, since=since):
                queue.add_all(to_keys(event))
        except Gone as err:
            log.info("%s: watch of %s expired (%s); relisting", queue.name, rt.plural, err.message)
        await asyncio.sleep(WATCH_RESTART_DELAY)
