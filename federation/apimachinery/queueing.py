"""The work queue that runs reconcilers, and the watch feed that fills it.

Controllers (the federation's, and each simulated cluster's) run the way controller-runtime runs
reconcilers: watches turn changes into keys, a queue de-duplicates the keys, and workers call
``reconcile(key)``, which reads the current state fresh and acts. The queue owns retries and
delays, so reconcilers never sleep, loop or count their own failures.

Guarantees of :class:`WorkQueue`:

* **one key never runs twice at once**, whatever the number of workers (``workers=N``): a key added
  while it is being reconciled is marked dirty and runs once more after the running call ends, as
  client-go's queue does;
* **de-duplication**: a key added while it waits is queued once;
* ``Result(requeue_after=s)`` runs the key again after ``s`` seconds (the earliest request wins);
* a reconcile that raises is retried after the delay of a :class:`RateLimiter`: per-key
  exponential backoff (5 ms doubling to a cap) under an overall token bucket, the larger of the
  two, as client-go's ``DefaultControllerRateLimiter``; success forgets the key's backoff;
* :class:`TemporaryError` asks for one retry after its own ``delay``; :class:`PermanentError` is
  counted and logged once and the key is not retried (kopf's two error roots); any other error is
  logged once per run of failures of a key, then retried quietly;
* every reconcile is counted in ``federation_reconcile_total{controller,result}`` (result is one
  of :data:`RESULTS`) and timed in ``federation_reconcile_duration_seconds{controller}``, where
  ``controller`` is the queue's name.

:func:`feed` follows a watch into a queue and survives its storage: a watch that ends or expires
(410) is reopened after the resync keys are queued, and a storage that fails (503 while its
database is away, or any other API error) is retried with backoff until it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

from prometheus_client import Counter, Histogram

from federation import metrics
from federation.apimachinery.errors import ApiError, Gone
from federation.apimachinery.resources import ResourceType
from federation.apimachinery.storage import Storage, WatchEvent

log = logging.getLogger(__name__)

BASE_BACKOFF: Final = 0.005
"""The first retry of a failing key waits this long (controller-runtime's 5 ms)."""
MAX_BACKOFF: Final = 5.0
"""Per-key backoff stops doubling here (controller-runtime: 1000 s; a failover controller cannot
wait that long, and the simulator's reconcilers fail only on lost races)."""
BUCKET_RATE: Final = 10.0
BUCKET_BURST: Final = 100
"""The overall retry budget: ``BUCKET_BURST`` retries at once, then ``BUCKET_RATE`` per second
(client-go's default bucket)."""
WATCH_RESTART_DELAY: Final = 0.05
MAX_WATCH_BACKOFF: Final = 5.0

ReconcileResult = Literal["success", "requeue", "error", "temporary", "permanent"]
RESULTS: Final[tuple[ReconcileResult, ...]] = ("success", "requeue", "error", "temporary", "permanent")
"""The values of the ``result`` label of ``federation_reconcile_total``."""

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Result:
    requeue_after: float | None = None
    """Run the key again after this many seconds (None: only when something changes)."""


class TemporaryError(Exception):
    """Raised by a reconcile: try the key again after ``delay`` seconds (its backoff is unchanged)."""

    def __init__(self, message: str = "", *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(Exception):
    """Raised by a reconcile: this key cannot succeed as things are; do not retry it (a later
    change of the object adds the key again)."""


def backoff(failures: int, *, base: float = BASE_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """The delay before retry number ``failures`` (1, 2, ...): ``base`` doubling to ``cap``."""
    return min(cap, base * 2.0 ** min(failures - 1, 64))


class TokenBucket:
    """The overall rate limit of retries: ``burst`` tokens, refilled at ``rate`` per second. Each
    retry takes one token, and waits until the token would exist (client-go's ``BucketRateLimiter``
    over ``rate.Limiter.Reserve``)."""

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def reserve(self) -> float:
        """Take one token; how many seconds from now it is due."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class RateLimiter(Generic[K]):
    """When a failed key runs again: the larger of its own exponential backoff and the overall
    bucket's delay (client-go's ``DefaultControllerRateLimiter``)."""

    def __init__(
        self,
        *,
        base: float = BASE_BACKOFF,
        cap: float = MAX_BACKOFF,
        rate: float = BUCKET_RATE,
        burst: int = BUCKET_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base
        self.cap = cap
        self.bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        return max(backoff(count, base=self.base, cap=self.cap), self.bucket.reserve())

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)


class WorkQueue(Generic[K]):
    """Keys to reconcile and the workers that reconcile them (see the module docstring)."""

    def __init__(
        self,
        reconcile: Callable[[K], Awaitable[Result]],
        *,
        name: str,
        workers: int = 1,
        rate_limiter: RateLimiter[K] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a work queue needs at least one worker")
        self._reconcile = reconcile
        self.name = name
        self.workers = workers
        self.rate_limiter: RateLimiter[K] = rate_limiter or RateLimiter()
        self._ready: deque[K] = deque()
        self._dirty: set[K] = set()
        """Keys to run: waiting in ``_ready``, or running and to run once more after."""
        self._processing: set[K] = set()
        self._wakeup = asyncio.Event()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._logged: set[K] = set()
        """Keys whose current run of failures has been logged."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._total: dict[ReconcileResult, Counter] = {}
        """This queue's children of the counter, made on first use (one lookup per result)."""
        self._duration: Histogram | None = None

    # ------------------------------------------------------------------ adding keys

    def add(self, key: K) -> None:
        if self._closed or key in self._dirty:
            return
        self._dirty.add(key)
        self._idle.clear()
        if key in self._processing:
            return  # runs again when the current call ends, never beside it
        self._ready.append(key)
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

    # ------------------------------------------------------------------ state

    @property
    def pending_timers(self) -> int:
        return len(self._timers)

    def __len__(self) -> int:
        """Keys waiting to run (not those running)."""
        return len(self._ready)

    @property
    def idle(self) -> bool:
        """Nothing queued or running (timers may still be pending)."""
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Until nothing is queued or running (timers may still be pending)."""
        await self._idle.wait()

    def _check_idle(self) -> None:
        if not self._dirty and not self._processing:
            self._idle.set()

    # ------------------------------------------------------------------ workers

    async def run(self) -> None:
        """The workers: run until :meth:`close`, or until cancelled."""
        if self.workers == 1:
            await self._work()
            return
        async with asyncio.TaskGroup() as group:
            for i in range(self.workers):
                group.create_task(self._work(), name=f"{self.name}/worker-{i}")

    async def _work(self) -> None:
        while not self._closed:
            if not self._ready:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key = self._ready.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            try:
                await self._process(key)
            finally:
                self._processing.discard(key)
                if key in self._dirty and not self._closed:
                    self._ready.append(key)
                    self._wakeup.set()
                self._check_idle()

    async def _process(self, key: K) -> None:
        started = time.perf_counter()
        outcome: ReconcileResult
        try:
            result = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except TemporaryError as err:
            outcome = "temporary"
            if key not in self._logged:
                self._logged.add(key)
                log.info("%s: reconcile of %r: %s; retrying in %.3fs", self.name, key, err, err.delay)
            self.add_after(key, err.delay)
        except PermanentError as err:
            outcome = "permanent"
            self._forget(key)
            log.error("%s: reconcile of %r failed for good: %s; not retrying", self.name, key, err)
        except ApiError as err:
            outcome = "error"
            self._retry(key, f"{err.code} {err.reason}: {err.message}")
        except Exception:
            outcome = "error"
            if key not in self._logged:
                log.exception("%s: reconcile of %r failed; retrying with backoff", self.name, key)
            self._retry(key, None)
        else:
            self._forget(key)
            if result.requeue_after is not None:
                outcome = "requeue"
                self.add_after(key, result.requeue_after)
            else:
                outcome = "success"
        self._record(outcome, time.perf_counter() - started)

    def _record(self, outcome: ReconcileResult, seconds: float) -> None:
        counter = self._total.get(outcome)
        if counter is None:
            counter = self._total[outcome] = metrics.RECONCILE_TOTAL.labels(self.name, outcome)
        if self._duration is None:
            self._duration = metrics.RECONCILE_DURATION_SECONDS.labels(self.name)
        counter.inc()
        self._duration.observe(seconds)

    def _forget(self, key: K) -> None:
        self.rate_limiter.forget(key)
        self._logged.discard(key)

    def _retry(self, key: K, why: str | None) -> None:
        delay = self.rate_limiter.when(key)
        if key not in self._logged:
            self._logged.add(key)
            if why is not None:
                log.info("%s: reconcile of %r: %s; retrying", self.name, key, why)
        else:
            count = self.rate_limiter.failures(key)
            log.debug("%s: reconcile of %r failed %d times; next try in %.3fs", self.name, key, count, delay)
        self.add_after(key, delay)

    def close(self) -> None:
        self._closed = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._ready.clear()
        self._dirty.clear()
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
    state may have changed while no watch was open). A watch that expires (410) restarts at once;
    one that fails otherwise (503 while the storage's database is away, say) restarts after a
    backoff that doubles up to :data:`MAX_WATCH_BACKOFF` and is forgotten once events flow again.
    """
    failures = 0
    while True:
        delay = WATCH_RESTART_DELAY
        try:
            since = await storage.current_version()
            queue.add_all(await resync())
            async for event in storage.watch(rt, None, since=since):
                failures = 0
                queue.add_all(to_keys(event))
        except Gone as err:
            failures = 0
            log.info("%s: watch of %s expired (%s); relisting", queue.name, rt.plural, err.message)
        except ApiError as err:
            failures += 1
            delay = backoff(failures, base=WATCH_RESTART_DELAY, cap=MAX_WATCH_BACKOFF)
            if failures == 1:
                log.warning(
                    "%s: watch of %s failed (%d %s: %s); retrying with backoff",
                    queue.name,
                    rt.plural,
                    err.code,
                    err.reason,
                    err.message,
                )
        await asyncio.sleep(delay)
