"""The placement controller: where each federated object goes now, written down as its Placement.

``reconcile((plural, namespace, name))`` looks at one federated Namespace, Secret or ReplicaSet and
the member clusters as they are now, and decides each cluster's share with the pure division of
:mod:`federation.scheduling` (annotations, cordons, Offline clusters, capacity). The plan is kept in
memory for the propagation controller (:attr:`Placer.plans`) and written as the object's
``Placement`` (``kubectl get placements``). Then every cluster concerned is queued for propagation.

Failover is this controller reacting to a Cluster going Offline: the cluster leaves every plan at
once and its replicas are divided among the clusters that remain. Nothing is written to a cluster that
cannot be reached (propagation skips it), so nothing there is deleted while it is away.

What the division alone would not guarantee, it adds:

* **Make-before-break.** A cluster whose share shrinks while another's grows (a rebalance after a
  cluster's return, a weight change) keeps its replicas until every growing cluster has its share
  ready, so federated ready replicas never drop below the desired count for a move.
* **Capacity.** Replicas a member reports as unschedulable for longer than
  ``FEDERATION_UNSCHEDULABLE_GRACE`` mark that cluster full for this workload (at what it could
  schedule) and the rest spill to clusters with room. With no room anywhere, the shortfall is reported
  (``spec.unschedulable``, a metric, an Event) and the members keep what they have: nothing is deleted.
* **Deletion.** A federated Secret or ReplicaSet being deleted holds the
  ``federation.io/propagation`` finalizer until every reachable member's copy is gone; then it lets
  the object go. A federated Namespace goes when its contents have gone (the namespace lifecycle
  does not wait on finalizers); its member copies go when the controller sees it gone, as do copies
  of any object deleted while the controllers were not running: a member copy whose federated object
  no longer exists is removed wherever the member can be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from federation import metrics
from federation.apimachinery import (
    NAMESPACES,
    REPLICASETS,
    SERVICES,
    AlreadyExists,
    EventRecorder,
    Forbidden,
    Informer,
    NotFound,
    Obj,
    Registry,
    ResourceType,
    Result,
    WriteOptions,
    meta,
)
from federation.apis import (
    FOLLOW_WORKLOADS_ANNOTATION,
    PLACEMENTS,
    PROPAGATION_FINALIZER,
    SYSTEM_NAMESPACE,
    placement_name,
)
from federation.controllers.desired import digest
from federation.controllers.fleet import PROPAGATED_KINDS, Fleet, Seat
from federation.controllers.writing import update_object
from federation.scheduling import ClusterState, PlacementError, object_key, plan
from federation.settings import ControllerSettings

log = logging.getLogger(__name__)

FedKey = tuple[str, str, str]
"""(plural, namespace, name) of a federated object; namespace ``""`` for a Namespace."""
KINDS: Final = {rt.plural: rt for rt in PROPAGATED_KINDS}
BUILT_IN_NAMESPACES: Final = frozenset(
    {"default", "kube-system", "kube-public", "kube-node-lease", SYSTEM_NAMESPACE}
)
"""Namespaces every member has already (or that stay in the federation): never propagated."""
CAPACITY_MEMORY: Final = 300.0
"""Seconds a cluster found full for a workload stays so before it is tried again."""


def key_of(rt: ResourceType, obj: Obj) -> FedKey:
    m = obj.get("metadata") or {}
    return (rt.plural, str(m.get("namespace") or "") if rt.namespaced else "", str(m.get("name", "")))


def is_propagated(rt: ResourceType, namespace: str, name: str) -> bool:
    """Whether the federation places objects of this name (its own and the built-in namespaces stay)."""
    if rt is NAMESPACES:
        return name not in BUILT_IN_NAMESPACES
    return namespace != SYSTEM_NAMESPACE


def unschedulable_pods(pods: list[Obj]) -> int:
    count = 0
    for pod in pods:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                count += cond.get("reason") == "Unschedulable"
    return count


class Placer:
    """Plans placements (see the module docstring)."""

    def __init__(
        self,
        *,
        registry: Registry,
        recorder: EventRecorder,
        fleet: Fleet,
        informers: Mapping[str, Informer],
        placements: Informer,
        settings: ControllerSettings,
        propagate: Callable[[str, FedKey], None],
        on_planned: Callable[[FedKey], None],
        replan: Callable[[FedKey], None] = lambda key: None,
    ) -> None:
        self.replan = replan
        self.registry = registry
        self.recorder = recorder
        self.fleet = fleet
        self.informers = informers
        self.placements = placements
        self.settings = settings
        self.propagate = propagate
        self.on_planned = on_planned
        self.plans: dict[FedKey, dict[str, int | None]] = {}
        self.planned_at: dict[FedKey, float] = {}
        """When each plan was made (propagation removes nothing on a plan older than a cluster's
        return)."""
        """Per federated object, each cluster it should be in now (replicas for a ReplicaSet)."""
        self.unschedulable: dict[FedKey, int] = {}
        self._pending_since: dict[tuple[FedKey, str], float] = {}
        self._full: dict[tuple[FedKey, str], tuple[int, float]] = {}
        """(object, cluster) -> (replicas it can hold, until when this is believed)."""
        self._failed_over: dict[FedKey, set[str]] = {}
        self._looked_at: dict[FedKey, tuple[str, float]] = {}
        """Per object: the version whose copies were all last queued for propagation, and when."""

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: FedKey) -> Result:
        plural, namespace, name = key
        rt = KINDS[plural]
        obj = self.informers[plural].get(namespace, name)
        holders = [seat for seat in self.fleet.seats.values() if seat.peek(rt, namespace, name) is not None]
        if obj is None or not is_propagated(rt, namespace, name):
            self._forget(key)
            for seat in holders:
                self.propagate(seat.name, key)
            return Result()
        m = meta(obj)
        if m.get("deletionTimestamp"):
            return await self._finalize(key, rt, obj, holders)
        if rt is not NAMESPACES and PROPAGATION_FINALIZER not in (m.get("finalizers") or []):
            added = await update_object(self.registry, rt, namespace, name, _add_finalizer, cached=obj)
            if added is None:
                return Result()
            obj = added
        previous = self.plans.get(key)
        seats = list(self.fleet.seats.values())
        waiting = self._unjudged(seats)
        if waiting is not None:
            return Result(requeue_after=waiting)
        states = [
            ClusterState(
                name=seat.name,
                labels=dict((seat.cluster.get("metadata") or {}).get("labels") or {}),
                ready=seat.ready,
                cordoned=seat.cordoned,
            )
            for seat in seats
        ]
        total = _replicas(obj) if rt.kind == "ReplicaSet" else None
        current = self._current(key, rt, seats, previous)
        requeue: float | None = None
        capacity: dict[str, int] = {}
        if total is not None:
            capacity, requeue = self._capacity(key, seats, current)
        try:
            decided = plan(
                annotations=dict(m.get("annotations") or {}),
                clusters=states,
                total=total,
                current=current,
                capacity=capacity,
                key=object_key(namespace, name),
            )
        except PlacementError as err:
            await self._write_placement(key, rt, obj, None, {}, error=str(err))
            await self.recorder.record(obj, type="Warning", reason="InvalidPlacement", message=str(err))
            return Result()
        desired: dict[str, int | None] = (
            {c: int(n) for c, n in decided.replicas.items()}
            if total is not None
            else {c: None for c in decided.replicas}
        )
        if rt is SERVICES and (m.get("annotations") or {}).get(FOLLOW_WORKLOADS_ANNOTATION) == "true":
            running = self._running_selected(namespace, obj)
            desired = {c: n for c, n in desired.items() if c in running}
        if total is not None:
            desired = self._keep_unplaced(desired, current, capacity, decided.unschedulable)
            desired, waiting = self._make_before_break(key, rt, desired, seats)
            if waiting:
                requeue = min(requeue or 5.0, 5.0)
            await self._report_unschedulable(key, obj, decided.unschedulable)
        self.plans[key] = desired
        self.planned_at[key] = time.monotonic()
        # The members first (a failover's replicas are what users wait for), then the record.
        version, now = _content_version(obj), time.monotonic()
        seen = self._looked_at.get(key)
        everywhere = seen is None or seen[0] != version or now - seen[1] >= self.settings.resync_period
        if everywhere:
            self._looked_at[key] = (version, now)
        for cluster in sorted(set(desired) | {s.name for s in holders} | set(previous or {})):
            if everywhere or (previous or {}).get(cluster, -1) != desired.get(cluster, -1):
                self.propagate(cluster, key)
        if rt is REPLICASETS and previous != desired:
            for service in self.informers[SERVICES.plural].list(namespace):
                if (meta(service).get("annotations") or {}).get(FOLLOW_WORKLOADS_ANNOTATION) == "true":
                    self.replan((SERVICES.plural, namespace, str(meta(service).get("name", ""))))
        # The record and the Event at once: one commit of the storage's group, not two in turn.
        writes = [self._write_placement(key, rt, obj, decided, desired)]
        if previous != desired:
            writes.append(self._announce(key, obj, previous, desired, decided.excluded))
        for outcome in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        self.on_planned(key)
        return Result(requeue_after=requeue)

    # ------------------------------------------------------------------ pieces

    def _unjudged(self, seats: list[Seat]) -> float | None:
        """Seconds to wait before planning while a cluster just registered has no verdict yet (its
        first probes take a second or two): planned without it, its share would go to the clusters
        judged first, and without rebalance stay there. None: plan now. A cluster that gets no
        verdict within a few probe periods does not hold anything up longer."""
        settle = (
            self.settings.probe_period
            * (max(self.settings.failure_threshold, self.settings.success_threshold) + 1)
            + self.settings.probe_timeout
        )
        now = time.monotonic()
        pending = [seat.seen_at + settle - now for seat in seats if not seat.judged]
        pending = [left for left in pending if left > 0]
        return min(max(min(pending), 0.05), 0.5) if pending else None

    def _running_selected(self, namespace: str, service: Obj) -> set[str]:
        """Clusters whose plan gives replicas to a ReplicaSet that the Service selects."""
        selector = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            return set()
        clusters: set[str] = set()
        for rs in self.informers[REPLICASETS.plural].list(namespace):
            labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in selector.items()):
                planned = self.plans.get((REPLICASETS.plural, namespace, str(meta(rs).get("name", "")))) or {}
                clusters.update(c for c, n in planned.items() if n)
        return clusters

    def look_again(self) -> None:
        """Have the next reconcile of every object queue all its copies (a cluster came back)."""
        self._looked_at.clear()

    def _forget(self, key: FedKey) -> None:
        self.plans.pop(key, None)
        self.planned_at.pop(key, None)
        self._looked_at.pop(key, None)
        self.unschedulable.pop(key, None)
        self._failed_over.pop(key, None)
        for pair in [p for p in self._pending_since if p[0] == key]:
            del self._pending_since[pair]
        for pair in [p for p in self._full if p[0] == key]:
            del self._full[pair]

    def _current(
        self, key: FedKey, rt: ResourceType, seats: list[Seat], previous: dict[str, int | None] | None
    ) -> dict[str, int]:
        """Replicas each Ready cluster holds now (its copy's spec), else what it was last given; for
        the other kinds, 1 where a copy is (a cordoned cluster keeps it)."""
        _, namespace, name = key
        current: dict[str, int] = {}
        for seat in seats:
            if not seat.ready:
                continue
            copy = seat.peek(rt, namespace, name)
            if copy is not None:
                current[seat.name] = _replicas(copy) if rt.kind == "ReplicaSet" else 1
            elif rt.kind != "ReplicaSet" and previous is not None and seat.name in previous:
                current[seat.name] = 1
            elif previous and previous.get(seat.name):
                current[seat.name] = int(previous[seat.name] or 0)
        return current

    def _capacity(
        self, key: FedKey, seats: list[Seat], current: Mapping[str, int]
    ) -> tuple[dict[str, int], float | None]:
        """Clusters found full for this ReplicaSet, and when to look again."""
        _, namespace, name = key
        now = time.monotonic()
        grace = self.settings.unschedulable_grace
        limits: dict[str, int] = {}
        wake: float | None = None
        for seat in seats:
            pair = (key, seat.name)
            pods = seat.pods_of(namespace, name) if seat.ready else []
            pending = unschedulable_pods(pods)
            if pending:
                since = self._pending_since.setdefault(pair, now)
                if now - since >= grace:
                    # What it could schedule: its pods that are not waiting for room (not its spec
                    # minus the waiting ones: a spec just lowered, whose waiting pod the member has
                    # not removed yet, would count a scheduled pod as missing room).
                    limit = len(pods) - pending
                    known = self._full.get(pair)
                    self._full[pair] = (min(limit, known[0]) if known else limit, now + CAPACITY_MEMORY)
                else:
                    wake = min(wake or grace, since + grace - now + 0.05)
            else:
                self._pending_since.pop(pair, None)
            full = self._full.get(pair)
            if full is not None:
                if full[1] < now:
                    del self._full[pair]
                else:
                    limits[seat.name] = full[0]
        return limits, wake

    @staticmethod
    def _keep_unplaced(
        desired: dict[str, int | None],
        current: Mapping[str, int],
        capacity: Mapping[str, int],
        shortfall: int,
    ) -> dict[str, int | None]:
        """With no room anywhere, the replicas that could not be placed stay where they wait (as
        Pending pods that a new node would take), so nothing is deleted for lack of room."""
        if shortfall <= 0:
            return desired
        kept = dict(desired)
        for cluster in sorted(capacity):
            if shortfall <= 0 or cluster not in kept:
                continue
            extra = min(shortfall, max(0, current.get(cluster, 0) - int(kept[cluster] or 0)))
            kept[cluster] = int(kept[cluster] or 0) + extra
            shortfall -= extra
        return kept

    def _make_before_break(
        self, key: FedKey, rt: ResourceType, desired: dict[str, int | None], seats: list[Seat]
    ) -> tuple[dict[str, int | None], bool]:
        """Hold shrinking clusters at what they have while a growing one is not ready yet."""
        _, namespace, name = key
        spec: dict[str, int] = {}
        ready: dict[str, int] = {}
        for seat in seats:
            copy = seat.peek(rt, namespace, name) if seat.ready else None
            if copy is not None:
                spec[seat.name] = _replicas(copy)
                ready[seat.name] = int((copy.get("status") or {}).get("readyReplicas") or 0)
        full = {c for (k, c) in self._full if k == key}
        lacking = [c for c, n in desired.items() if int(n or 0) > ready.get(c, 0) and c not in full]
        givers = [c for c, n in spec.items() if int(desired.get(c) or 0) < n]
        if not lacking or not givers:
            return desired, False
        held = dict(desired)
        for cluster in givers:
            held[cluster] = spec[cluster]
        return held, True

    async def _report_unschedulable(self, key: FedKey, obj: Obj, shortfall: int) -> None:
        """The shortfall in the metric, and a Warning Event whenever it changes to a new number (with
        no room anywhere the plan itself does not change: the members keep what they have)."""
        _, namespace, name = key
        before = self.unschedulable.get(key, 0)
        self.unschedulable[key] = shortfall
        metrics.REPLICASET_UNSCHEDULABLE_REPLICAS.labels(namespace, name).set(shortfall)
        if shortfall and shortfall != before:
            await self.recorder.record(
                obj,
                type="Warning",
                reason="Unschedulable",
                message=f"{shortfall} replicas fit in no eligible cluster",
            )

    async def _announce(
        self,
        key: FedKey,
        obj: Obj,
        previous: dict[str, int | None] | None,
        desired: dict[str, int | None],
        excluded: Mapping[str, str],
    ) -> None:
        shares = (
            ", ".join(f"{c}={n}" if n is not None else c for c, n in sorted(desired.items())) or "no cluster"
        )
        await self.recorder.record(obj, type="Normal", reason="Scheduled", message=f"placed on {shares}")
        moved = self._failed_over.setdefault(key, set())
        for cluster, reason in sorted(excluded.items()):
            had = (previous or {}).get(cluster)
            if reason == "Offline" and had and cluster not in moved:
                moved.add(cluster)
                metrics.FAILOVERS_TOTAL.labels(cluster).inc()
                await self.recorder.record(
                    obj,
                    type="Warning",
                    reason="FailedOver",
                    message=f"cluster {cluster} is Offline: its {had} replicas were placed on the others",
                )
        for cluster in list(moved):
            if cluster not in excluded:
                moved.discard(cluster)

    async def _write_placement(
        self,
        key: FedKey,
        rt: ResourceType,
        obj: Obj,
        decided: Any,
        desired: Mapping[str, int | None],
        *,
        error: str | None = None,
    ) -> None:
        _plural, namespace, name = key
        where = namespace or name  # a Namespace's Placement lives in itself
        m = meta(obj)
        spec: dict[str, Any] = {
            "resource": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": rt.kind,
                "namespace": namespace,
                "name": name,
                "uid": m.get("uid", ""),
            },
            "clusters": [
                {"name": c} if n is None else {"name": c, "replicas": n} for c, n in sorted(desired.items())
            ],
        }
        if rt.kind == "ReplicaSet":
            spec["replicas"] = _replicas(obj)
            spec["unschedulable"] = self.unschedulable.get(key, 0)
        if decided is not None:
            spec["excluded"] = [{"name": c, "reason": r} for c, r in sorted(decided.excluded.items())]
        if error:
            spec["error"] = error
        pname = placement_name(rt.kind, name)
        existing = self.placements.peek(where, pname)  # read only
        if existing is not None and existing.get("spec") == spec:
            return
        if existing is None:
            body = {
                "apiVersion": PLACEMENTS.api_version,
                "kind": PLACEMENTS.kind,
                "metadata": {"name": pname, "namespace": where},
                "spec": spec,
            }
            try:
                await self.registry.create(PLACEMENTS, where, body, WriteOptions())
                return
            except AlreadyExists:
                pass
            except (NotFound, Forbidden):  # the namespace is gone or going
                return
        await update_object(
            self.registry, PLACEMENTS, where, pname, lambda p: _set_spec(p, spec), cached=existing
        )

    async def delete_placement(self, key: FedKey) -> None:
        plural, namespace, name = key
        rt = KINDS[plural]
        with contextlib.suppress(NotFound):
            await self.registry.delete(PLACEMENTS, namespace or name, placement_name(rt.kind, name))

    async def _finalize(self, key: FedKey, rt: ResourceType, obj: Obj, holders: list[Seat]) -> Result:
        """The finalizer path: member copies first, then the object."""
        _, namespace, name = key
        if PROPAGATION_FINALIZER not in (meta(obj).get("finalizers") or []):
            return Result()
        self.plans[key] = {}
        self.planned_at[key] = time.monotonic()
        for seat in holders:
            self.propagate(seat.name, key)
        reachable = [seat.name for seat in holders if seat.ready]
        if reachable:
            return Result(requeue_after=5.0)
        self._forget(key)
        await self.delete_placement(key)
        await update_object(self.registry, rt, namespace, name, _remove_finalizer)
        return Result()


def _content_version(obj: Obj) -> str:
    """What the member copies are made from (not the status, which the controllers write themselves:
    a status write must not queue every copy again)."""
    m = obj.get("metadata") or {}
    parts = [obj.get(f) for f in ("spec", "data", "type", "immutable")]
    parts += [m.get("labels"), m.get("annotations"), m.get("uid"), m.get("deletionTimestamp")]
    return digest({"parts": parts})


def _replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _add_finalizer(obj: Obj) -> bool:
    m = meta(obj)
    if m.get("deletionTimestamp") or PROPAGATION_FINALIZER in (m.get("finalizers") or []):
        return False
    m["finalizers"] = [*(m.get("finalizers") or []), PROPAGATION_FINALIZER]
    return True


def _remove_finalizer(obj: Obj) -> bool:
    m = meta(obj)
    finalizers = m.get("finalizers") or []
    if PROPAGATION_FINALIZER not in finalizers:
        return False
    m["finalizers"] = [f for f in finalizers if f != PROPAGATION_FINALIZER]
    return True


def _set_spec(placement: Obj, spec: dict[str, Any]) -> bool:
    if placement.get("spec") == spec:
        return False
    placement["spec"] = spec
    return True
