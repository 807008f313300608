"""The propagation controller: each member cluster holds what its plan says, and nothing else of ours.

One work queue per member cluster, with ``FEDERATION_MEMBER_CONCURRENCY`` workers, on that member's
own threads and timeouts: an unreachable or slow member backs off in its own queue and never delays
the others. ``reconcile(cluster, (plural, namespace, name))`` compares the member's copy, as its
watch last showed it, with the copy :func:`~federation.controllers.desired.member_object` builds from
the federated object and the cluster's share (:attr:`Placer.plans`), and writes only if they differ,
so the steady state makes no member writes:

* no copy, one wanted: create it. An object of that name that the federation did not make is never
  overwritten: that is a conflict, kept for status and told in an Event, unless the federated object
  asks to adopt it (``federation.io/adopt: "true"``);
* a copy that is not what is wanted: replace it. When the copy carries the digest of the current
  wanted object (the federation wrote exactly this, and someone changed it since), or a copy the
  federation wrote has vanished, that is drift: put back, counted
  (``federation_drift_corrections_total``) and recorded as an Event;
* a copy not wanted any more (the cluster left the plan, the federated object is gone): delete it,
  on the condition that it is still the one the federation made (uid precondition).

Nothing is written to a cluster that is not Ready: when it returns, every object is looked at again.
Every write is counted in ``federation_propagation_total`` and timed. A failed write keeps its error
for the status (:attr:`Propagator.errors`) and is retried with backoff by the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from federation import metrics
from federation.apimachinery import (
    AlreadyExists,
    ApiError,
    Conflict,
    EventRecorder,
    Informer,
    NotFound,
    Obj,
    PermanentError,
    ResourceType,
    Result,
    TemporaryError,
    WorkQueue,
    meta,
)
from federation.apis import ADOPT_ANNOTATION
from federation.controllers.desired import (
    federated_uid,
    for_update,
    is_current,
    is_ours,
    member_object,
    was_edited,
)
from federation.controllers.fleet import Fleet, Seat
from federation.controllers.placing import KINDS, FedKey, Placer
from federation.members import MemberUnreachable
from federation.settings import ControllerSettings

log = logging.getLogger(__name__)

RETRY_UNSYNCED: Final = 0.2
EXPECTATION_TTL: Final = 5.0
"""Seconds a copy waits for the member's watch to show this process's own last write to it (or the
newer version a Conflict revealed) before it is looked at regardless: a watch that lost the event,
a member whose versions went back."""
PairKey = tuple[str, FedKey]


class Propagator:
    """Per-cluster queues and their reconcile (see the module docstring)."""

    def __init__(
        self,
        *,
        fleet: Fleet,
        placer: Placer,
        informers: dict[str, Informer],
        recorder: EventRecorder,
        settings: ControllerSettings,
        on_result: Callable[[FedKey], None],
        may_write: Callable[[], bool] = lambda: True,
    ) -> None:
        self.may_write = may_write
        """Whether this process still leads (a member write starts only then)."""
        self.fleet = fleet
        self.placer = placer
        self.informers = informers
        self.recorder = recorder
        self.settings = settings
        self.on_result = on_result
        self.queues: dict[str, WorkQueue[FedKey]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.errors: dict[PairKey, str] = {}
        """Last failed write per (cluster, object), until a write succeeds."""
        self.conflicts: dict[PairKey, str] = {}
        """Objects of the same name a member holds that the federation did not make."""
        self._written: set[PairKey] = set()
        """Copies this process made or found current (a vanished one is drift)."""
        self._expected: dict[PairKey, tuple[int, float]] = {}
        """Per copy, the member version the watch must show before the cached copy can be trusted
        (that of this process's last write to it, or the one read after a Conflict), and since when.
        Until then the cache is older than the member: a write from it would be refused (Conflict)
        or repeat the last one (AlreadyExists), and retrying it every 50 ms only loads a busy member
        further (client-go's controllers keep "expectations" for the same reason)."""

    # ------------------------------------------------------------------ queues

    def enqueue(self, cluster: str, key: FedKey) -> None:
        queue = self.queues.get(cluster)
        if queue is None:
            if self.fleet.get(cluster) is None:
                return
            queue = WorkQueue(
                lambda k, c=cluster: self.reconcile(c, k),  # type: ignore[misc]
                name=f"propagation/{cluster}",
                workers=self.settings.member_concurrency,
            )
            self.queues[cluster] = queue
            self._tasks[cluster] = asyncio.get_running_loop().create_task(
                queue.run(), name=f"propagation {cluster}"
            )
        queue.add(key)

    async def drop(self, cluster: str) -> None:
        queue, task = self.queues.pop(cluster, None), self._tasks.pop(cluster, None)
        if queue is not None:
            queue.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pair in [p for p in self.errors if p[0] == cluster]:
            del self.errors[pair]
        for pair in [p for p in self.conflicts if p[0] == cluster]:
            del self.conflicts[pair]
        self._written = {p for p in self._written if p[0] != cluster}
        self._expected = {p: v for p, v in self._expected.items() if p[0] != cluster}

    def idle(self) -> bool:
        return all(q.idle for q in self.queues.values())

    async def close(self) -> None:
        for cluster in list(self.queues):
            await self.drop(cluster)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, cluster: str, key: FedKey) -> Result:
        seat = self.fleet.get(cluster)
        if seat is None or seat.member is None or not seat.ready:
            return Result()
        plural, namespace, name = key
        rt = KINDS[plural]
        if not seat.synced(rt):
            raise TemporaryError(f"{cluster}: {rt.plural} not listed yet", delay=RETRY_UNSYNCED)
        federated = self.informers[plural].peek(namespace, name)  # read only
        plan = self.placer.plans.get(key)
        pair = (cluster, key)
        behind = self._behind(seat, rt, pair)
        if behind is not None:  # the watch event of the write, when it comes, queues the key again
            return Result(requeue_after=behind)
        current = seat.peek(rt, namespace, name)
        wanted = (
            federated is not None
            and plan is not None
            and cluster in plan
            and not meta(federated).get("deletionTimestamp")
        )
        try:
            if not wanted:
                if (
                    current is not None
                    and federated is not None
                    and plan is not None
                    and (self.placer.planned_at.get(key, 0.0) < seat.ready_since)
                ):
                    # The plan was made while this cluster was away: plan again before removing
                    # anything it holds (a returning cluster keeps its copies until then).
                    self.placer.replan(key)
                    return Result()
                if current is not None and (federated is None or plan is not None):
                    await self._delete(seat, rt, key, current)
                self._written.discard(pair)
                self.errors.pop(pair, None)
                self.conflicts.pop(pair, None)
                return Result()
            assert federated is not None
            assert plan is not None
            desired = member_object(federated, replicas=plan[cluster])
            if current is None:
                if await self._create(seat, rt, key, federated, desired):
                    return Result()  # not ours, not to adopt: the conflict stays for status
            elif not is_current(current, desired):
                drift = was_edited(current, desired)
                await self._write(
                    seat,
                    rt,
                    key,
                    "updated",
                    lambda: seat.member.replace(  # type: ignore[union-attr]
                        rt, namespace, name, for_update(desired, current)
                    ),
                )
                if drift:
                    await self._drift(seat, rt, key, federated, "edited")
        except MemberUnreachable as err:
            self.errors[pair] = err.message
            raise TemporaryError(err.message, delay=1.0) from None
        except Conflict as err:  # the copy changed under us: look again once the watch shows it
            with contextlib.suppress(ApiError):
                self._expect(pair, await seat.member.get(rt, namespace, name))
            raise TemporaryError(err.message, delay=0.05) from None
        except NotFound as err:  # its namespace is not there yet
            self.errors[pair] = err.message
            raise TemporaryError(err.message, delay=0.2) from None
        except ApiError as err:
            self.errors[pair] = f"{err.code} {err.reason}: {err.message}"
            self.on_result(key)
            if err.code >= 500 or err.code == 429:
                raise TemporaryError(err.message, delay=1.0) from None
            raise PermanentError(err.message) from None
        self._written.add(pair)
        if self.errors.pop(pair, None) is not None or self.conflicts.pop(pair, None) is not None:
            self.on_result(key)
        return Result()

    async def _create(self, seat: Seat, rt: ResourceType, key: FedKey, federated: Obj, desired: Obj) -> bool:
        """Create the copy (or adopt, or take back our own); True when the member holds an object of
        that name the federation did not make and may not adopt (a conflict, nothing written)."""
        _, namespace, name = key
        member = seat.member
        assert member is not None
        pair = (seat.name, key)
        try:
            await self._write(seat, rt, key, "created", lambda: member.create(rt, namespace, desired))
        except AlreadyExists:
            existing = await member.get(rt, namespace, name)
            uid = str(meta(federated).get("uid", ""))
            adopt = (meta(federated).get("annotations") or {}).get(ADOPT_ANNOTATION) == "true"
            made_here = is_ours(existing) or federated_uid(existing) == uid
            if not made_here and not adopt:
                message = f"{rt.kind} {name} exists in cluster {seat.name}, not made by the federation"
                if pair not in self.conflicts:
                    self.conflicts[pair] = message
                    metrics.PROPAGATION_TOTAL.labels(seat.name, rt.kind, "conflict").inc()
                    await self.recorder.record(federated, type="Warning", reason="Conflict", message=message)
                    self.on_result(key)
                return True
            if is_current(existing, desired):  # ours, made a moment ago: the watch has not shown it yet
                self._expect(pair, existing)
                return False
            await self._write(
                seat,
                rt,
                key,
                "updated",
                lambda: member.replace(rt, namespace, name, for_update(desired, existing)),
            )
            if adopt and not is_ours(existing):
                await self.recorder.record(
                    federated,
                    type="Normal",
                    reason="Adopted",
                    message=f"adopted the copy in cluster {seat.name}",
                )
            return False
        if (seat.name, key) in self._written:
            await self._drift(seat, rt, key, federated, "deleted")
        return False

    async def _delete(self, seat: Seat, rt: ResourceType, key: FedKey, current: Obj) -> None:
        _, namespace, name = key
        member = seat.member
        assert member is not None
        if not is_ours(current):
            return
        with contextlib.suppress(NotFound):
            await self._write(
                seat,
                rt,
                key,
                "deleted",
                lambda: member.delete(rt, namespace, name, uid=meta(current).get("uid")),
            )

    def _behind(self, seat: Seat, rt: ResourceType, pair: PairKey) -> float | None:
        """Seconds left to wait for the member's watch to reach :attr:`_expected` (None: it has)."""
        expected = self._expected.get(pair)
        if expected is None:
            return None
        version, since = expected
        informer = seat.informer(rt)
        left = since + EXPECTATION_TTL - time.monotonic()
        if informer is None or informer.resource_version >= version or left <= 0:
            del self._expected[pair]
            return None
        return left

    async def _write(
        self, seat: Seat, rt: ResourceType, key: FedKey, result: str, call: Callable[[], object]
    ) -> None:
        if not self.may_write():
            raise TemporaryError("this process does not lead the controllers (any more)", delay=1.0)
        started = time.monotonic()
        try:
            written = await call()  # type: ignore[misc]
        except ApiError as err:
            outcome = "conflict" if isinstance(err, (Conflict, AlreadyExists)) else "error"
            metrics.PROPAGATION_TOTAL.labels(seat.name, rt.kind, outcome).inc()
            raise
        finally:
            metrics.PROPAGATION_DURATION_SECONDS.labels(seat.name, rt.kind).observe(
                time.monotonic() - started
            )
        metrics.PROPAGATION_TOTAL.labels(seat.name, rt.kind, result).inc()
        if isinstance(written, dict):
            self._expect((seat.name, key), written)

    def echoes(self, cluster: str, key: FedKey, copy: Obj) -> bool:
        """Whether ``copy`` (a member's watch event) is this controller's own last write coming
        back, unchanged: nothing to reconcile, and the cache is current for it again."""
        pair = (cluster, key)
        expected = self._expected.get(pair)
        if expected is None or str(meta(copy).get("resourceVersion") or "") != str(expected[0]):
            return False
        del self._expected[pair]
        return True

    def _expect(self, pair: PairKey, copy: Obj) -> None:
        """Trust the cached copy again only once the member's watch has shown ``copy``'s version."""
        version = str(meta(copy).get("resourceVersion") or "")
        if version.isdigit():
            self._expected[pair] = (int(version), time.monotonic())

    async def _drift(self, seat: Seat, rt: ResourceType, key: FedKey, federated: Obj, how: str) -> None:
        metrics.DRIFT_CORRECTIONS_TOTAL.labels(seat.name, rt.kind).inc()
        log.info("cluster %s: %s %s/%s was %s by hand; put back", seat.name, rt.kind, key[1], key[2], how)
        await self.recorder.record(
            federated,
            type="Warning",
            reason="DriftCorrected",
            message=f"the copy in cluster {seat.name} was {how} outside the federation; put back",
        )
