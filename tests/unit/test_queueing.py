"""The work queue's guarantees, one test each, and the watch feed's recovery from a failing storage.

Every wait has a deadline; no test sleeps a fixed time and then asserts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from federation.apimachinery.errors import Conflict, Unavailable
from federation.apimachinery.kinds import SECRETS
from federation.apimachinery.memory import MemoryStorage
from federation.apimachinery.queueing import (
    BASE_BACKOFF,
    PermanentError,
    RateLimiter,
    Result,
    TemporaryError,
    TokenBucket,
    WorkQueue,
    backoff,
    feed,
)
from federation.apimachinery.resources import Obj, ResourceType
from federation.apimachinery.storage import ListPage, ObjectFilter, WatchEvent

pytestmark = pytest.mark.anyio


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)


class Running:
    """A queue's workers as a task, stopped on exit."""

    def __init__(self, queue: WorkQueue[Any]) -> None:
        self.queue = queue
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WorkQueue[Any]:
        self.task = asyncio.create_task(self.queue.run())
        return self.queue

    async def __aexit__(self, *exc: object) -> None:
        self.queue.close()
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def reconciles(controller: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "federation_reconcile_total", {"controller": controller, "result": result}
    )
    return value or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_one_key_never_runs_twice_at_once_with_many_workers() -> None:
    running: dict[str, int] = {}
    overlaps: list[str] = []
    calls: dict[str, int] = {}
    concurrent = 0
    most = 0

    async def reconcile(key: str) -> Result:
        nonlocal concurrent, most
        running[key] = running.get(key, 0) + 1
        if running[key] > 1:
            overlaps.append(key)
        concurrent += 1
        most = max(most, concurrent)
        calls[key] = calls.get(key, 0) + 1
        await asyncio.sleep(0.005)
        running[key] -= 1
        concurrent -= 1
        return Result()

    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-exclusive", workers=4)
    async with Running(queue):
        for _ in range(20):
            for key in ("a", "b", "c", "d"):
                queue.add(key)
            await asyncio.sleep(0.001)
        await until(lambda: not queue._dirty and not queue._processing)
        await asyncio.wait_for(queue.wait_idle(), 5)
    assert overlaps == []
    assert most > 1, "several keys ran at once on the four workers"
    assert set(calls) == {"a", "b", "c", "d"}


async def test_a_key_added_while_running_runs_once_more_after() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    async def reconcile(key: str) -> Result:
        nonlocal calls
        calls += 1
        if calls == 1:
            started.set()
            await release.wait()
        return Result()

    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-dirty", workers=3)
    async with Running(queue):
        queue.add("k")
        await asyncio.wait_for(started.wait(), 5)
        queue.add("k")
        queue.add("k")
        await asyncio.sleep(0)
        assert calls == 1, "not run beside itself, though two workers are free"
        release.set()
        await until(lambda: calls == 2)
        await asyncio.wait_for(queue.wait_idle(), 5)
    assert calls == 2


async def test_keys_added_while_waiting_are_queued_once() -> None:
    seen: list[str] = []

    async def reconcile(key: str) -> Result:
        seen.append(key)
        return Result()

    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-dedup")
    for key in ["a", "b", "a", "a", "c", "b"]:
        queue.add(key)
    assert len(queue) == 3
    async with Running(queue):
        await asyncio.wait_for(queue.wait_idle(), 5)
    assert seen == ["a", "b", "c"]


def test_backoff_doubles_from_five_milliseconds_to_the_cap() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [0.005, 0.01, 0.02, 0.04]
    assert backoff(50) == 5.0
    assert backoff(10_000) == 5.0


async def test_failures_back_off_per_key_and_success_forgets() -> None:
    times: list[float] = []
    fail = 4

    async def reconcile(key: str) -> Result:
        times.append(asyncio.get_running_loop().time())
        if len(times) <= fail:
            raise Conflict.make("lost a race")
        return Result()

    limiter: RateLimiter[str] = RateLimiter(base=0.02, cap=10.0)
    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-backoff", rate_limiter=limiter)
    async with Running(queue):
        queue.add("k")
        await until(lambda: len(times) == fail + 1)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        for gap, want in zip(gaps, [0.02, 0.04, 0.08, 0.16], strict=True):
            assert gap >= want * 0.9, (gaps, want)
        await until(lambda: limiter.failures("k") == 0)
        assert limiter.failures("k") == 0, "success forgot the key's failures"
        # The next failure starts again from the base delay.
        assert limiter.when("k") == pytest.approx(0.02)


def test_the_bucket_limits_retries_overall() -> None:
    clock = Clock()
    limiter: RateLimiter[str] = RateLimiter(base=0.001, cap=10.0, rate=10.0, burst=3, clock=clock)
    first = [limiter.when(f"key-{i}") for i in range(3)]
    assert first == [0.001, 0.001, 0.001], "within the burst, each key's own backoff"
    assert [limiter.when(f"key-{i}") for i in range(3, 6)] == pytest.approx([0.1, 0.2, 0.3])
    clock.now += 10.0  # the bucket refills, up to its burst
    assert limiter.when("key-6") == pytest.approx(0.001)


def test_the_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=1, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.5)
    clock.now += 1.0
    assert bucket.reserve() == pytest.approx(0.0)


async def test_permanent_errors_are_counted_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def reconcile(key: str) -> Result:
        nonlocal calls
        calls += 1
        raise PermanentError("the object names a cluster that does not exist")

    before = reconciles("test-permanent", "permanent")
    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-permanent")
    async with Running(queue):
        queue.add("k")
        await until(lambda: reconciles("test-permanent", "permanent") == before + 1)
        await asyncio.wait_for(queue.wait_idle(), 5)
        assert queue.pending_timers == 0
        assert calls == 1
        assert queue.rate_limiter.failures("k") == 0
    logged = [r for r in caplog.records if "failed for good" in r.getMessage()]
    assert len(logged) == 1


async def test_a_temporary_error_retries_after_its_delay() -> None:
    times: list[float] = []

    async def reconcile(key: str) -> Result:
        times.append(asyncio.get_running_loop().time())
        if len(times) == 1:
            raise TemporaryError("member not ready", delay=0.2)
        return Result()

    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-temporary")
    async with Running(queue):
        queue.add("k")
        await until(lambda: len(times) == 2)
    assert times[1] - times[0] >= 0.19
    assert reconciles("test-temporary", "temporary") >= 1


async def test_requeue_after_runs_the_key_again_later() -> None:
    times: list[float] = []

    async def reconcile(key: str) -> Result:
        times.append(asyncio.get_running_loop().time())
        return Result(requeue_after=0.15) if len(times) == 1 else Result()

    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-requeue")
    async with Running(queue):
        queue.add("k")
        await asyncio.wait_for(queue.wait_idle(), 5)
        assert queue.pending_timers == 1
        await until(lambda: len(times) == 2)
        await asyncio.wait_for(queue.wait_idle(), 5)
        assert queue.pending_timers == 0
    assert times[1] - times[0] >= 0.14


async def test_the_earliest_requeue_wins() -> None:
    done = asyncio.Event()

    async def reconcile(key: str) -> Result:
        done.set()
        return Result()

    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-earliest")
    async with Running(queue):
        started = asyncio.get_running_loop().time()
        queue.add_after("k", 30.0)
        queue.add_after("k", 0.05)
        queue.add_after("k", 60.0)
        await asyncio.wait_for(done.wait(), 5)
        assert asyncio.get_running_loop().time() - started < 5


async def test_metrics_count_every_result_and_time_it() -> None:
    name = "test-metrics"
    outcomes = {"ok": Result(), "again": Result(requeue_after=60.0)}

    async def reconcile(key: str) -> Result:
        if key == "boom":
            raise RuntimeError("a bug")
        if key == "later":
            raise TemporaryError("later", delay=60.0)
        if key == "never":
            raise PermanentError("never")
        return outcomes[key]

    before = {r: reconciles(name, r) for r in ("success", "requeue", "error", "temporary", "permanent")}
    count_before = REGISTRY.get_sample_value(
        "federation_reconcile_duration_seconds_count", {"controller": name}
    )
    queue: WorkQueue[str] = WorkQueue(reconcile, name=name, rate_limiter=RateLimiter(base=60.0))
    async with Running(queue):
        queue.add_all(["ok", "again", "boom", "later", "never"])
        await asyncio.wait_for(queue.wait_idle(), 5)
    after = {r: reconciles(name, r) - before[r] for r in before}
    assert after == {"success": 1, "requeue": 1, "error": 1, "temporary": 1, "permanent": 1}
    count = REGISTRY.get_sample_value("federation_reconcile_duration_seconds_count", {"controller": name})
    assert (count or 0) - (count_before or 0) == 5


async def test_an_unexpected_error_is_logged_once_per_run_of_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def reconcile(key: str) -> Result:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("a bug")
        return Result()

    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-logged", rate_limiter=RateLimiter(base=0.001))
    async with Running(queue):
        queue.add("k")
        await until(lambda: calls == 4)
    logged = [r for r in caplog.records if "retrying with backoff" in r.getMessage()]
    assert len(logged) == 1


class FlakyStorage(MemoryStorage):
    """A real MemoryStorage whose reads and watches answer 503 while ``down`` is set, as the
    federation's storage does while its database is away."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise Unavailable.make("the database is unreachable")

    async def current_version(self) -> int:
        self._check()
        return await super().current_version()

    async def list(self, rt: ResourceType, namespace: str | None, **kw: Any) -> ListPage:
        self._check()
        return await super().list(rt, namespace, **kw)

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        since: int | None,
        match: ObjectFilter | None = None,
        progress: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        return self._watch(rt, namespace, since=since, match=match, progress=progress)

    async def _watch(self, rt: ResourceType, namespace: str | None, **kw: Any) -> AsyncIterator[WatchEvent]:
        self._check()
        async for event in super().watch(rt, namespace, **kw):
            yield event
            if self.down:
                self._check()


def secret(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "ns"}}


async def test_the_feed_backs_off_and_recovers_while_the_storage_answers_503() -> None:
    storage = FlakyStorage()
    seen: set[str] = set()

    async def reconcile(key: str) -> Result:
        seen.add(key)
        return Result()

    async def resync() -> list[str]:
        return [str(s["metadata"]["name"]) for s in (await storage.list(SECRETS, None)).items]

    def to_keys(event: WatchEvent) -> list[str]:
        return [str(event.object["metadata"]["name"])]

    queue: WorkQueue[str] = WorkQueue(reconcile, name="test-feed")
    task = asyncio.create_task(feed(storage, SECRETS, queue, to_keys, resync))
    try:
        async with Running(queue):
            await storage.create(SECRETS, secret("before"))
            await until(lambda: "before" in seen)
            storage.down = True
            outage = asyncio.get_running_loop().time()
            await storage.create(SECRETS, secret("during"))  # writes still land; reads fail
            await until(lambda: storage.refused >= 4)
            # It backs off (50, 100, 200 ms, ...) instead of spinning on the dead storage.
            assert asyncio.get_running_loop().time() - outage >= 0.3
            assert not task.done(), "the feed survives the outage"
            storage.down = False
            await storage.create(SECRETS, secret("after"))
            await until(lambda: {"during", "after"} <= seen)
            assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        storage.cache.close()


def _never(*_: Any) -> Awaitable[Result]:
    raise AssertionError("not called")


def test_a_queue_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        WorkQueue(_never, name="none", workers=0)


def test_base_backoff_is_five_milliseconds() -> None:
    assert BASE_BACKOFF == 0.005
