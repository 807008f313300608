"""The controller manager: the federation's informers, the member fleet, and every controller's queue.

One :class:`ControllerManager` runs all controllers over one storage (the federation's Postgres), in
``fedctl up`` beside the API server or alone in ``federation-controller``. It follows the federation
(Clusters, Secrets, Namespaces, ReplicaSets, Placements) with informers, so changes arrive at once
through the store's watch, with a periodic resync (``FEDERATION_RESYNC_PERIOD``) as a safety net,
and turns every change into keys on queues:

* a Cluster added, changed or removed: the fleet connects to it (client, member watches), the health
  controller probes it, and every federated object is planned again when its readiness, labels or
  cordon changed (failover is this, at once);
* a credentials Secret in ``federation-system`` changed: the fleet reconnects the clusters naming it;
* a federated Namespace, Secret or ReplicaSet changed: it is planned again;
* a member's copy (or, for a ReplicaSet, one of its pods) changed: that member is reconciled for it,
  its status is summed again, and a ReplicaSet is planned again (make-before-break and capacity
  depend on what members report).

It also removes the federation's Events older than ``FEDERATION_EVENT_RETENTION`` and reports each
queue's depth. Nothing here decides anything: the controllers do (health, placing, propagation,
status).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from federation import metrics
from federation.apimachinery import (
    EVENTS,
    NAMESPACES,
    REPLICASETS,
    SECRETS,
    SERVICES,
    EventRecorder,
    Handlers,
    Informer,
    NotFound,
    Obj,
    Registry,
    ResourceType,
    Result,
    SchemaSet,
    Scheme,
    Storage,
    StorageSource,
    WorkQueue,
    meta,
    now_rfc3339,
    parse_rfc3339,
)
from federation.apis import (
    CLUSTERS,
    FEDERATION_KINDS,
    FEDERATION_SCHEMAS,
    PLACEMENTS,
    PROPAGATION_FINALIZER,
    SYSTEM_NAMESPACE,
)
from federation.controllers.fleet import PODS, Fleet, is_cordoned, is_ready
from federation.controllers.health import HealthController
from federation.controllers.placing import KINDS, FedKey, Placer, key_of
from federation.controllers.propagation import Propagator
from federation.controllers.routing import TrafficController, is_load_balancer
from federation.controllers.status import REPORT_BATCH, StatusController
from federation.settings import ControllerSettings, TrafficSettings
from federation.traffic import make_provider

log = logging.getLogger(__name__)

STATUS_MAX_WAIT: Final = 5.0
"""Seconds summing an object's status may wait for a placement backlog (see ``_sum_status``)."""

COMPONENT: Final = "federation-controller"
HOUSEKEEPING_PERIOD: Final = 5.0
EXPIRY_PERIOD: Final = 60.0


class ControllerManager:
    """Every controller of the federation over ``storage`` (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        *,
        settings: ControllerSettings,
        host: str | None = None,
        traffic: TrafficSettings | None = None,
        work_dir: Path | None = None,
        may_write: Callable[[], bool] | None = None,
    ) -> None:
        """``traffic``: the global load balancer's settings (None: provider ``none``, weights only);
        ``work_dir``: where a provider keeps its files (Caddy's configuration); ``may_write``:
        whether this process still leads, asked before every member write (see leadership.py)."""
        self.storage = storage
        self.settings = settings
        self.registry = Registry(Scheme(FEDERATION_KINDS), storage, SchemaSet(extra=FEDERATION_SCHEMAS))
        resync = settings.resync_period or None
        self.informers: dict[str, Informer] = {
            rt.plural: Informer(
                StorageSource(storage, rt), name=f"federation/{rt.plural}", resync_period=resync
            )
            for rt in (NAMESPACES, SECRETS, SERVICES, REPLICASETS)
        }
        namespaces = self.informers[NAMESPACES.plural]
        self.recorder = EventRecorder(
            storage,
            host=host or socket.gethostname(),
            component=COMPONENT,
            namespaces=lambda name: namespaces.peek("", name),
        )
        self.clusters = Informer(StorageSource(storage, CLUSTERS), name="federation/clusters")
        self.placements = Informer(StorageSource(storage, PLACEMENTS), name="federation/placements")
        self.observed: dict[tuple[str, FedKey], str] = {}
        self.fleet = Fleet(
            settings,
            on_member_change=self._member_changed,
            on_seat_change=self._seat_changed,
            on_member_warning=self._member_warning,
        )
        self._since = now_rfc3339()
        """Member Warnings from before this start were folded by the process before (or are old)."""
        self.health = HealthController(
            fleet=self.fleet, registry=self.registry, recorder=self.recorder, settings=settings
        )
        self.placer = Placer(
            registry=self.registry,
            recorder=self.recorder,
            fleet=self.fleet,
            informers=self.informers,
            placements=self.placements,
            settings=settings,
            propagate=self._propagate,
            on_planned=self._planned,
            replan=lambda key: self.placing_queue.add(key),
        )
        self.propagator = Propagator(
            fleet=self.fleet,
            placer=self.placer,
            informers=self.informers,
            recorder=self.recorder,
            settings=settings,
            on_result=self._planned,
            may_write=may_write or (lambda: True),
        )
        self.traffic_settings = traffic or TrafficSettings(traffic_provider="none")
        provider = make_provider(
            self.traffic_settings, work_dir=work_dir or Path(tempfile.mkdtemp(prefix="federation-traffic-"))
        )
        self.routing = TrafficController(
            registry=self.registry,
            fleet=self.fleet,
            placer=self.placer,
            services=self.informers[SERVICES.plural],
            provider=provider,
            traffic=self.traffic_settings,
            settings=settings,
            on_weights=lambda key: self.status_queue.add(key),
        )
        self.status = StatusController(
            registry=self.registry,
            fleet=self.fleet,
            placer=self.placer,
            propagator=self.propagator,
            informers=self.informers,
            observed=self.observed,
            placements=self.placements,
            traffic=self.routing,
        )
        self.health_queue: WorkQueue[str] = WorkQueue(self.health.reconcile, name="health", workers=256)
        # Placement and status reconciles mostly wait on Postgres writes, which the storage commits
        # in groups: the more run at once, the more each commit carries (a failover replans every
        # object at once).
        self.placing_queue: WorkQueue[FedKey] = WorkQueue(self.placer.reconcile, name="placement", workers=16)
        self.status_queue: WorkQueue[FedKey] = WorkQueue(self._sum_status, name="status", workers=16)
        self._status_deferred: dict[FedKey, float] = {}
        self.traffic_queue: WorkQueue[FedKey] = WorkQueue(self.routing.reconcile, name="traffic", workers=2)
        self.queues = (self.health_queue, self.placing_queue, self.status_queue, self.traffic_queue)
        self._tasks: list[asyncio.Task[None]] = []
        self._warning_tasks: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run every controller until cancelled."""
        try:
            await self._start()
            await asyncio.gather(*self._tasks)
        finally:
            await self.close()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        followed = [*self.informers.values(), self.clusters, self.placements]
        for informer in followed:
            self._tasks.append(loop.create_task(informer.run(), name=f"informer {informer.name}"))
        await asyncio.gather(*(informer.wait_synced() for informer in followed))
        # Credentials first, so that the clusters' first connections find them.
        self.informers[SECRETS.plural].add_handlers(
            Handlers(
                on_add=self._secret_changed,
                on_update=lambda old, new: self._secret_changed(new, old),
                on_delete=self._secret_deleted,
                read_only=True,
            )
        )
        self.clusters.add_handlers(
            Handlers(
                on_add=self._cluster_added,
                on_update=self._cluster_updated,
                on_delete=self._cluster_deleted,
                read_only=True,
            )
        )
        for plural in (NAMESPACES.plural, SERVICES.plural, REPLICASETS.plural):
            rt = KINDS[plural]
            self.informers[plural].add_handlers(self._federated_handlers(rt))
        await self.routing.provider.start()
        for queue in self.queues:
            self._tasks.append(loop.create_task(queue.run(), name=f"queue {queue.name}"))
        self._tasks.append(loop.create_task(self._housekeeping(), name="controller housekeeping"))
        self._tasks.append(loop.create_task(self._check_addresses(), name="regional address checks"))
        self.started.set()
        log.info("controllers started: %d clusters", len(self.fleet.seats))

    async def close(self) -> None:
        for queue in self.queues:
            queue.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.health.close()
        await self.propagator.close()
        await self.fleet.close()
        await self.routing.close()

    async def _sum_status(self, key: FedKey) -> Result:
        """The status controller's reconcile, after placement: while placement has a backlog (a
        failover replans every object), summing status waits, up to ``STATUS_MAX_WAIT``, so that
        the plans, which move replicas, get the event loop first."""
        if len(self.placing_queue) > self.placing_queue.workers:
            now = time.monotonic()
            first = self._status_deferred.setdefault(key, now)
            if now - first < STATUS_MAX_WAIT:
                return Result(requeue_after=REPORT_BATCH)
        self._status_deferred.pop(key, None)
        return await self.status.reconcile(key)

    def idle(self) -> bool:
        """No key waiting or running anywhere (for tests and benchmarks)."""
        return self.placing_queue.idle and self.status_queue.idle and self.propagator.idle()

    # ------------------------------------------------------------------ federation handlers

    def _federated_handlers(self, rt: ResourceType) -> Handlers:
        def changed(obj: Obj) -> None:
            self.placing_queue.add(key_of(rt, obj))

        def updated(old: Obj, new: Obj) -> None:
            if placement_may_change(old, new):
                changed(new)

        return Handlers(on_add=changed, on_update=updated, on_delete=changed, read_only=True)

    def _secret_changed(self, secret: Obj, old: Obj | None = None) -> None:
        if meta(secret).get("namespace") == SYSTEM_NAMESPACE:
            self.fleet.secret_changed(secret)
        elif old is None or placement_may_change(old, secret):
            self.placing_queue.add(key_of(SECRETS, secret))

    def _secret_deleted(self, secret: Obj) -> None:
        if meta(secret).get("namespace") == SYSTEM_NAMESPACE:
            self.fleet.secret_deleted(secret)
        else:
            self.placing_queue.add(key_of(SECRETS, secret))

    def _cluster_added(self, cluster: Obj) -> None:
        self.fleet.cluster_changed(cluster)
        self.health_queue.add(str(meta(cluster).get("name", "")))
        self._plan_everything()

    def _cluster_updated(self, old: Obj, new: Obj) -> None:
        self.fleet.cluster_changed(new)
        became_ready = is_ready(new) and not is_ready(old)
        if (
            became_ready
            or is_ready(old) != is_ready(new)
            or is_cordoned(old) != is_cordoned(new)
            or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
        ):
            if became_ready:
                self.placer.look_again()
            self._plan_everything()

    def _cluster_deleted(self, cluster: Obj) -> None:
        name = str(meta(cluster).get("name", ""))
        self.fleet.cluster_deleted(cluster)
        self.health.forget(name)
        asyncio.get_running_loop().create_task(self.propagator.drop(name))
        self._plan_everything()

    def _plan_everything(self) -> None:
        for plural, informer in self.informers.items():
            rt = KINDS[plural]
            for namespace, name in informer.keys():  # noqa: SIM118 - an Informer, not a dict
                self.placing_queue.add((rt.plural, namespace if rt.namespaced else "", name))

    # ------------------------------------------------------------------ member handlers

    def _seat_changed(self, cluster: str) -> None:
        self.health_queue.add(cluster)
        self.placer.look_again()
        self._plan_everything()

    def _member_changed(self, cluster: str, rt: ResourceType, obj: Obj) -> None:
        m = obj.get("metadata") or {}
        if rt is PODS:
            owners = [
                ref.get("name") for ref in m.get("ownerReferences") or [] if ref.get("kind") == "ReplicaSet"
            ]
            if not owners:
                return
            key: FedKey = (REPLICASETS.plural, str(m.get("namespace", "")), str(owners[0]))
            self.placing_queue.add(key)
            self._traffic_in(str(m.get("namespace", "")))
            return
        key = key_of(rt, obj)
        self.observed[(cluster, key)] = now_rfc3339()
        if not self.propagator.echoes(cluster, key, obj):  # our own write: nothing to put right
            self._propagate(cluster, key)
        self.status_queue.add_after(key, REPORT_BATCH)
        if rt is REPLICASETS:
            self.placing_queue.add(key)
        elif rt is SERVICES:
            self.traffic_queue.add(key)

    def _member_warning(self, cluster: str, event: Obj) -> None:
        """Fold a member's Warning Event about one of our copies (or their pods) into the federated
        object's Events, naming the cluster (FailedScheduling, FailedCreate, ...)."""
        if str(event.get("lastTimestamp") or event.get("firstTimestamp") or "") < self._since:
            return
        seat = self.fleet.get(cluster)
        involved = event.get("involvedObject") or {}
        namespace, name, kind = (str(involved.get(k) or "") for k in ("namespace", "name", "kind"))
        if seat is None or not name:
            return
        key: FedKey | None = None
        if kind == "Pod":
            pod = seat.copy_of(PODS, namespace, name)
            owners = [r.get("name") for r in (pod or {}).get("metadata", {}).get("ownerReferences") or []]
            if pod is not None and owners:
                key = (REPLICASETS.plural, namespace, str(owners[0]))
        elif kind in ("ReplicaSet", "Secret", "Namespace", "Service"):
            rt = {"ReplicaSet": REPLICASETS, "Secret": SECRETS, "Namespace": NAMESPACES, "Service": SERVICES}[
                kind
            ]
            if seat.peek(rt, namespace, name) is not None:
                key = key_of(rt, {"metadata": {"namespace": namespace, "name": name}})
        if key is None:
            return
        federated = self.informers[key[0]].get(key[1], key[2])
        if federated is None:
            return
        message = f"cluster {cluster}: {event.get('message', '')}"
        reason = str(event.get("reason") or "Warning")
        self._warning_tasks.add(
            task := asyncio.get_running_loop().create_task(
                self.recorder.record(federated, type="Warning", reason=reason, message=message)
            )
        )
        task.add_done_callback(self._warning_tasks.discard)

    def _propagate(self, cluster: str, key: FedKey) -> None:
        self.propagator.enqueue(cluster, key)

    def _planned(self, key: FedKey) -> None:
        self.status_queue.add(key)
        if key[0] == SERVICES.plural:
            self.traffic_queue.add(key)

    def _traffic_in(self, namespace: str) -> None:
        """Queue the LoadBalancer Services of ``namespace`` (their ready pods changed)."""
        for service in self.informers[SERVICES.plural].list(namespace):
            if is_load_balancer(service):
                self.traffic_queue.add((SERVICES.plural, namespace, str(meta(service).get("name", ""))))

    async def _check_addresses(self) -> None:
        while True:
            await asyncio.sleep(self.settings.probe_period)
            self.traffic_queue.add_all(await self.routing.check_addresses())

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeping(self) -> None:
        # Expired Events are looked for every tenth of the retention (at most a minute apart):
        # each pass lists every Event, which cost 8 % of the controllers' time at every 5 s.
        expiry_period = min(EXPIRY_PERIOD, max(HOUSEKEEPING_PERIOD, self.settings.event_retention / 10))
        next_expiry = time.monotonic() + expiry_period
        while True:
            await asyncio.sleep(HOUSEKEEPING_PERIOD)
            for queue in self.queues:
                metrics.WORKQUEUE_DEPTH.labels(queue.name).set(len(queue))
            for cluster, queue in list(self.propagator.queues.items()):
                metrics.WORKQUEUE_DEPTH.labels(f"propagation/{cluster}").set(len(queue))
            if time.monotonic() < next_expiry:
                continue
            next_expiry = time.monotonic() + expiry_period
            try:
                await self._expire_events()
            except Exception:
                log.exception("removing expired events failed")

    async def _expire_events(self) -> None:
        """Remove this component's Events whose last occurrence is older than the retention."""
        retention = self.settings.event_retention
        if not retention:
            return
        page = await self.storage.list(EVENTS, None, match=_ours)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=retention)
        for event in page.items:
            stamp = parse_rfc3339(str(event.get("lastTimestamp") or event.get("firstTimestamp") or ""))
            if stamp is not None and stamp < cutoff:
                with contextlib.suppress(NotFound):
                    m = meta(event)
                    await self.storage.delete(EVENTS, str(m.get("namespace", "")), str(m.get("name", "")))


def placement_may_change(old: Obj, new: Obj) -> bool:
    """Whether an update of a federated object may change what the placer does with it. Not when
    only its version, its status (the status controller's own writes) or the placer's finalizer
    (its own write) changed outside a deletion: each of those cost a plan for nothing, two or
    three per object. A resync (``old is new``), a deletion, and an object without the finalizer
    always may."""
    m = new.get("metadata") or {}
    if old is new or m.get("deletionTimestamp") or PROPAGATION_FINALIZER not in (m.get("finalizers") or []):
        return True
    return _placement_view(old) != _placement_view(new)


_UNPLANNED_META: Final = frozenset({"resourceVersion", "managedFields", "finalizers"})


def _placement_view(obj: Obj) -> tuple[dict[str, object], dict[str, object], list[str]]:
    m = obj.get("metadata") or {}
    return (
        {k: v for k, v in obj.items() if k not in ("metadata", "status")},
        {k: v for k, v in m.items() if k not in _UNPLANNED_META},
        [f for f in m.get("finalizers") or [] if f != PROPAGATION_FINALIZER],
    )


def _ours(event: Obj) -> bool:
    return (event.get("source") or {}).get("component") == COMPONENT
