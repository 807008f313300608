"""What runs inside a simulated cluster: its node pool, ReplicaSet controller, scheduler and kubelets.

A simulated cluster has no containers, but its API tells the truth about capacity, as a GKE cluster's
would: every node offers ``pods_per_node`` pod slots. The controller here keeps the API objects moving
the way Kubernetes' own components do:

* **node pool** (``NODEPOOL``): Node objects ``<cluster>-node-<i>`` for ``i < node_count``, labelled
  with ``topology.kubernetes.io/region`` and ``.../zone``; the count can change at run time (a region
  losing or gaining capacity); a managed node deleted by hand comes back, as a managed instance group
  brings its VM back;
* **ReplicaSet controller** (``replicaset/<ns>/<name>``): creates and deletes Pods (owned through
  ``ownerReferences``) until the active ones match ``spec.replicas``, deleting the least useful first
  (unscheduled, then pending, then not ready, then newest), releases pods whose labels stop matching, and
  writes a status that tells the truth: ``replicas``, ``fullyLabeledReplicas``, ``readyReplicas``,
  ``availableReplicas`` (honouring ``minReadySeconds``) and ``observedGeneration``. Pods of a deleted
  ReplicaSet are garbage-collected; ``foregroundDeletion`` and ``orphan`` finalizers are honoured;
* **scheduler and kubelets** (``SCHEDULE``, one key for the whole cluster because slots are shared):
  binds pending pods, oldest first, to the ready node with the most free slots (ties by name); a pod that
  fits nowhere stays Pending with ``PodScheduled=False/Unschedulable`` and one ``FailedScheduling``
  Event per episode; a bound pod turns Running and Ready ``start_delay`` seconds after it was bound;
  pods of nodes that are gone are deleted (the pod garbage collector), so their ReplicaSets replace
  them elsewhere or leave them Pending.

The reconcile is level-based (:meth:`Workload.reconcile` is the one entry point): it reads the
storage fresh, computes what should be, writes the difference, and asks to be run again when a start
delay or ``minReadySeconds`` will have passed. It never waits and never remembers more than the
kubelet would: the monotonic time each pod was bound, which drives the start delay.

Addresses: cluster ``k`` gives node ``i`` the pod range ``10.<k mod 128>.<i>.0/24`` and the InternalIP
``10.<240 + (k div 256) mod 16>.<k mod 256>.<i+2>``; services come from ``10.<128 + k mod 112>.0.0/16``
(see :mod:`federation.sim.kinds`). Nothing is routable: they only make the objects look right.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from federation.apimachinery.errors import AlreadyExists, Conflict, NotFound
from federation.apimachinery.events import EventRecorder, namespace_alive
from federation.apimachinery.kinds import REPLICASETS
from federation.apimachinery.objects import (
    copy_json,
    dig,
    labels_of,
    meta,
    name_of,
    namespace_of,
    now_rfc3339,
    parse_rfc3339,
)
from federation.apimachinery.queueing import Result
from federation.apimachinery.resources import Obj, ResourceType
from federation.apimachinery.selectors import LabelSelector, label_selector_from_object
from federation.apimachinery.storage import Storage, WatchEvent
from federation.sim.kinds import NODES, PODS, default_pod_spec, node_ready

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.4"
POOL_LABEL = "sim.federation.io/node-pool"
POOL_NAME = "default-pool"
MAX_NODES = 250
MAX_PODS_PER_NODE = 250
CREATE_BURST = 500
"""At most this many pods are created or deleted per reconcile of one ReplicaSet (then it requeues)."""

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Key:
    """What one reconcile is about."""

    kind: Literal["nodepool", "schedule", "replicaset"]
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.name else self.kind


NODEPOOL = Key("nodepool")
SCHEDULE = Key("schedule")


@dataclass(frozen=True)
class Topology:
    """Names and addresses of one simulated cluster's nodes."""

    cluster: str
    region: str
    index: int = 0

    def node_name(self, i: int) -> str:
        return f"{self.cluster}-node-{i}"

    def zone(self, i: int) -> str:
        return f"{self.region}-{'abc'[i % 3]}"

    def node_ip(self, i: int) -> str:
        return f"10.{240 + (self.index // 256) % 16}.{self.index % 256}.{i + 2}"

    def pod_cidr(self, i: int) -> str:
        return f"10.{self.index % 128}.{i}.0/24"

    def service_cidr(self) -> str:
        return f"10.{128 + self.index % 112}.0.0/16"


@dataclass(frozen=True)
class WorkloadSettings:
    pods_per_node: int = 10
    start_delay: float = 1.0
    """Seconds from a pod's binding to a node until it is Running and Ready."""

    def __post_init__(self) -> None:
        if not 1 <= self.pods_per_node <= MAX_PODS_PER_NODE:
            raise ValueError(f"pods per node must be between 1 and {MAX_PODS_PER_NODE}")
        if self.start_delay < 0:
            raise ValueError("the start delay cannot be negative")


def _controller_ref(obj: Obj) -> dict[str, Any] | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def _owned_by_replicaset(pod: Obj) -> tuple[str, str] | None:
    """(name, uid) of the ReplicaSet controlling ``pod``, if one does."""
    ref = _controller_ref(pod)
    if (
        ref is None
        or ref.get("kind") != "ReplicaSet"
        or not str(ref.get("apiVersion", "")).startswith("apps/")
    ):
        return None
    return str(ref.get("name", "")), str(ref.get("uid", ""))


def _condition(obj: Obj, kind: str) -> dict[str, Any] | None:
    for cond in dig(obj, "status", "conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def pod_ready(pod: Obj) -> bool:
    cond = _condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_active(pod: Obj) -> bool:
    """Counts toward its ReplicaSet: not terminal and not being deleted."""
    return dig(pod, "status", "phase") not in _TERMINAL and not meta(pod).get("deletionTimestamp")


def _pod_available(pod: Obj, min_ready_seconds: int, now: float) -> tuple[bool, float | None]:
    """Whether ``pod`` is available, and if not yet, in how many seconds it will be."""
    if not pod_ready(pod):
        return False, None
    if min_ready_seconds <= 0:
        return True, None
    cond = _condition(pod, "Ready") or {}
    since = parse_rfc3339(str(cond.get("lastTransitionTime") or ""))
    if since is None:
        return True, None
    left = since.timestamp() + min_ready_seconds - now
    return (left <= 0), (left if left > 0 else None)


def _qos_class(spec: dict[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    requests_or_limits = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            requests_or_limits = True
        for resource in ("cpu", "memory"):
            if resource not in limits or requests.get(resource, limits[resource]) != limits[resource]:
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_or_limits else "BestEffort"


def _hex_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


class Workload:
    """The simulated in-cluster controllers of one cluster (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        *,
        topology: Topology,
        settings: WorkloadSettings,
        node_count: int,
        recorder: EventRecorder,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.topology = topology
        self.settings = settings
        self.recorder = recorder
        self._clock = clock
        self._node_count = 0
        self.set_node_count(node_count)
        self._bound_at: dict[str, float] = {}
        """Pod uid -> monotonic time of its binding: the kubelet's own record, drives the start delay."""

    # ------------------------------------------------------------------ inputs

    @property
    def node_count(self) -> int:
        return self._node_count

    def set_node_count(self, count: int) -> None:
        """Resize the node pool (takes effect at the next ``NODEPOOL`` reconcile)."""
        if not 0 <= count <= MAX_NODES:
            raise ValueError(f"node count must be between 0 and {MAX_NODES}")
        self._node_count = count

    @staticmethod
    def keys_for_pod(event: WatchEvent) -> list[Key]:
        keys = [SCHEDULE]
        owner = _owned_by_replicaset(event.object)
        if owner is not None:
            keys.append(Key("replicaset", namespace_of(event.object), owner[0]))
        return keys

    @staticmethod
    def keys_for_replicaset(event: WatchEvent) -> list[Key]:
        return [Key("replicaset", namespace_of(event.object), name_of(event.object))]

    @staticmethod
    def keys_for_node(event: WatchEvent) -> list[Key]:
        return [NODEPOOL, SCHEDULE]

    async def all_replicaset_keys(self) -> list[Key]:
        page = await self.storage.list(REPLICASETS, None)
        return [Key("replicaset", namespace_of(rs), name_of(rs)) for rs in page.items]

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: Key) -> Result:
        if key.kind == "nodepool":
            return await self._reconcile_node_pool()
        if key.kind == "schedule":
            return await self._reconcile_scheduling()
        return await self._reconcile_replicaset(key.namespace, key.name)

    # ------------------------------------------------------------------ node pool

    def _node(self, i: int) -> Obj:
        t = self.topology
        name = t.node_name(i)
        zone = t.zone(i)
        pods = str(self.settings.pods_per_node)
        now = now_rfc3339()
        resources = {"cpu": "4", "memory": "16393220Ki", "ephemeral-storage": "98831908Ki", "pods": pods}
        conditions = [
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        ident = _hex_id(t.cluster, name)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "e2-standard-4",
                    "topology.kubernetes.io/region": t.region,
                    "topology.kubernetes.io/zone": zone,
                    POOL_LABEL: POOL_NAME,
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {
                "podCIDR": t.pod_cidr(i),
                "podCIDRs": [t.pod_cidr(i)],
                "providerID": f"sim://{t.cluster}/{zone}/{name}",
            },
            "status": {
                "capacity": dict(resources),
                "allocatable": dict(resources),
                "conditions": [
                    {
                        "type": kind,
                        "status": status,
                        "reason": reason,
                        "message": message,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                    for kind, status, reason, message in conditions
                ],
                "addresses": [
                    {"type": "InternalIP", "address": t.node_ip(i)},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": ident[:32],
                    "systemUUID": str(uuid.UUID(ident[32:64])),
                    "bootID": str(uuid.uuid4()),
                    "kernelVersion": "6.1.100+",
                    "osImage": "Container-Optimized OS from Google",
                    "containerRuntimeVersion": "containerd://1.7.24",
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": KUBELET_VERSION,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        }

    async def _reconcile_node_pool(self) -> Result:
        page = await self.storage.list(NODES, None, label_equals={POOL_LABEL: POOL_NAME})
        existing = {name_of(n) for n in page.items if labels_of(n).get(POOL_LABEL) == POOL_NAME}
        wanted = {self.topology.node_name(i): i for i in range(self._node_count)}
        for name in sorted(existing - wanted.keys()):
            with contextlib.suppress(NotFound):
                await self.storage.delete(NODES, "", name)
        for name, i in sorted(wanted.items(), key=lambda kv: kv[1]):
            if name in existing:
                continue
            with contextlib.suppress(AlreadyExists):
                await self.storage.create(NODES, self._node(i))
        return Result()

    # ------------------------------------------------------------------ scheduler and kubelets

    async def _reconcile_scheduling(self) -> Result:
        nodes = (await self.storage.list(NODES, None)).items
        pods = (await self.storage.list(PODS, None)).items
        by_name = {name_of(n): n for n in nodes}
        now = self._clock()

        # Pod garbage collection: pods bound to nodes that no longer exist.
        live: list[Obj] = []
        for pod in pods:
            node = dig(pod, "spec", "nodeName")
            if node and node not in by_name:
                await self._delete_quietly(PODS, namespace_of(pod), name_of(pod))
                continue
            live.append(pod)
        seen_uids = {str(meta(p).get("uid")) for p in live}
        for uid in [u for u in self._bound_at if u not in seen_uids]:
            del self._bound_at[uid]

        schedulable = [n for n in nodes if node_ready(n) and not dig(n, "spec", "unschedulable")]
        capacity = {name_of(n): _allocatable_pods(n) for n in schedulable}
        used: Counter[str] = Counter()
        ips: dict[str, set[str]] = {}
        for pod in live:
            node = dig(pod, "spec", "nodeName")
            if node and dig(pod, "status", "phase") not in _TERMINAL:
                used[node] += 1
                if dig(pod, "status", "podIP"):
                    ips.setdefault(node, set()).add(str(pod["status"]["podIP"]))

        waiting = sorted(
            (p for p in live if not dig(p, "spec", "nodeName") and pod_active(p)),
            key=lambda p: (str(meta(p).get("creationTimestamp", "")), namespace_of(p), name_of(p)),
        )
        for pod in waiting:
            free = [n for n in capacity if used[n] < capacity[n]]
            if free:
                target = min(free, key=lambda n: (used[n] - capacity[n], used[n], n))
                used[target] += 1
                await self._bind(pod, by_name[target], now)
            else:
                await self._mark_unschedulable(pod, nodes, schedulable, capacity, used)

        next_due: float | None = None
        for pod in live:
            node = dig(pod, "spec", "nodeName")
            if not node or dig(pod, "status", "phase") != "Pending" or meta(pod).get("deletionTimestamp"):
                continue
            uid = str(meta(pod).get("uid"))
            bound = self._bound_at.setdefault(uid, now)
            left = bound + self.settings.start_delay - now
            if left > 0:
                next_due = left if next_due is None else min(next_due, left)
                continue
            await self._start(pod, by_name[node], ips.setdefault(node, set()))
        return Result(requeue_after=next_due)

    async def _bind(self, pod: Obj, node: Obj, now: float) -> None:
        stamp = now_rfc3339()
        bound = copy_json(pod)
        bound["spec"]["nodeName"] = name_of(node)
        status = bound.setdefault("status", {})
        status["phase"] = "Pending"
        status["hostIP"] = _node_ip(node)
        status["hostIPs"] = [{"ip": _node_ip(node)}]
        status["conditions"] = [
            {
                "type": "PodReadyToStartContainers",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": stamp,
            },
            {"type": "Initialized", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp},
            {
                "type": "Ready",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": stamp,
                "reason": "ContainersNotReady",
                "message": "containers with unready status: "
                f"[{' '.join(str(c.get('name')) for c in bound['spec'].get('containers') or [])}]",
            },
            {
                "type": "ContainersReady",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": stamp,
                "reason": "ContainersNotReady",
            },
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp},
        ]
        status["startTime"] = stamp
        status["containerStatuses"] = [
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
            }
            for c in bound["spec"].get("containers") or []
        ]
        try:
            await self.storage.update(PODS, bound, precondition_rv=int(meta(pod)["resourceVersion"]))
        except (NotFound, Conflict):
            return  # deleted or changed meanwhile; the watch brings the next pass
        self._bound_at[str(meta(pod).get("uid"))] = now
        await self.recorder.record(
            bound,
            type="Normal",
            reason="Scheduled",
            message=f"Successfully assigned {namespace_of(pod)}/{name_of(pod)} to {name_of(node)}",
            component="default-scheduler",
        )

    async def _mark_unschedulable(
        self,
        pod: Obj,
        nodes: list[Obj],
        schedulable: list[Obj],
        capacity: dict[str, int],
        used: Counter[str],
    ) -> None:
        message = _unschedulable_message(nodes, schedulable, capacity, used)
        current = _condition(pod, "PodScheduled")
        if current is not None and current.get("status") == "False" and current.get("message") == message:
            return
        changed = copy_json(pod)
        status = changed.setdefault("status", {})
        status["phase"] = "Pending"
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
        ]
        try:
            await self.storage.update(PODS, changed, precondition_rv=int(meta(pod)["resourceVersion"]))
        except (NotFound, Conflict):
            return
        await self.recorder.record(
            changed, type="Warning", reason="FailedScheduling", message=message, component="default-scheduler"
        )

    async def _start(self, pod: Obj, node: Obj, node_ips: set[str]) -> None:
        stamp = now_rfc3339()
        ip = _free_pod_ip(node, node_ips)
        node_ips.add(ip)
        running = copy_json(pod)
        status = running.setdefault("status", {})
        started = status.get("startTime") or stamp
        status.update(
            phase="Running",
            podIP=ip,
            podIPs=[{"ip": ip}],
            hostIP=_node_ip(node),
            hostIPs=[{"ip": _node_ip(node)}],
            startTime=started,
            qosClass=_qos_class(running.get("spec") or {}),
        )
        status["conditions"] = [
            {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
            for kind in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ]
        status["containerStatuses"] = [
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "imageID": f"sim://{c.get('image')}@sha256:{_hex_id(str(c.get('image')))}",
                "containerID": f"containerd://{_hex_id(str(meta(pod).get('uid')), str(c.get('name')))}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}},
                "lastState": {},
            }
            for c in running["spec"].get("containers") or []
        ]
        try:
            await self.storage.update(PODS, running, precondition_rv=int(meta(pod)["resourceVersion"]))
        except (NotFound, Conflict):
            return

    # ------------------------------------------------------------------ ReplicaSets

    async def _reconcile_replicaset(self, namespace: str, name: str) -> Result:
        try:
            rs: Obj | None = await self.storage.get(REPLICASETS, namespace, name)
        except NotFound:
            rs = None
        pods = (await self.storage.list(PODS, namespace)).items
        if rs is None:
            # Garbage collection: the owner is gone, so are its pods.
            for pod in pods:
                owner = _owned_by_replicaset(pod)
                if owner is not None and owner[0] == name:
                    await self._delete_quietly(PODS, namespace, name_of(pod))
            return Result()

        uid = str(meta(rs).get("uid"))
        owned: list[Obj] = []
        for pod in pods:
            owner = _owned_by_replicaset(pod)
            if owner is None or owner[0] != name:
                continue
            if owner[1] != uid:
                await self._delete_quietly(PODS, namespace, name_of(pod))  # left by an earlier namesake
                continue
            owned.append(pod)

        if meta(rs).get("deletionTimestamp"):
            return await self._finish_deletion(rs, owned)

        try:
            selector = label_selector_from_object(dig(rs, "spec", "selector") or {})
        except ValueError:
            log.warning("replicaset %s/%s has an invalid selector; leaving it alone", namespace, name)
            return Result()
        owned = [p for p in owned if await self._keep_or_release(p, selector)]
        active = [p for p in owned if pod_active(p)]
        wanted = dig(rs, "spec", "replicas")
        replicas = int(wanted) if wanted is not None else 1
        diff = replicas - len(active)
        requeue: float | None = None
        if diff > 0 and await namespace_alive(self.storage, namespace):
            for _ in range(min(diff, CREATE_BURST)):
                created = await self._create_pod(rs)
                if created is not None:
                    active.append(created)
            if diff > CREATE_BURST:
                requeue = 0.0
        elif diff < 0:
            doomed = _deletion_order(active)[: min(-diff, CREATE_BURST)]
            for pod in doomed:
                if await self._delete_quietly(PODS, namespace, name_of(pod)):
                    await self.recorder.record(
                        rs,
                        type="Normal",
                        reason="SuccessfulDelete",
                        message=f"Deleted pod: {name_of(pod)}",
                        component="replicaset-controller",
                    )
            gone = {name_of(p) for p in doomed}
            active = [p for p in active if name_of(p) not in gone]
            if -diff > CREATE_BURST:
                requeue = 0.0

        status, available_in = self._status(rs, active)
        if available_in is not None:
            requeue = available_in if requeue is None else min(requeue, available_in)
        if status != (rs.get("status") or {}):
            updated = copy_json(rs)
            updated["status"] = status
            await self.storage.update(REPLICASETS, updated, precondition_rv=int(meta(rs)["resourceVersion"]))
        return Result(requeue_after=requeue)

    async def _keep_or_release(self, pod: Obj, selector: LabelSelector) -> bool:
        """Whether ``pod`` still belongs to its ReplicaSet; if its labels stopped matching, release it."""
        if selector.matches(labels_of(pod)):
            return True
        await self._release(pod)
        return False

    async def _release(self, pod: Obj) -> None:
        """Drop the controller reference of ``pod`` (it keeps running, owned by nobody)."""
        released = copy_json(pod)
        meta(released)["ownerReferences"] = [
            r for r in meta(pod).get("ownerReferences") or [] if not r.get("controller")
        ]
        if not meta(released)["ownerReferences"]:
            del meta(released)["ownerReferences"]
        with contextlib.suppress(NotFound, Conflict):
            await self.storage.update(PODS, released, precondition_rv=int(meta(pod)["resourceVersion"]))

    async def _finish_deletion(self, rs: Obj, owned: list[Obj]) -> Result:
        finalizers = list(meta(rs).get("finalizers") or [])
        namespace = namespace_of(rs)
        if "foregroundDeletion" in finalizers:
            for pod in owned:
                await self._delete_quietly(PODS, namespace, name_of(pod))
            finalizers.remove("foregroundDeletion")
        elif "orphan" in finalizers:
            for pod in owned:
                await self._release(pod)
            finalizers.remove("orphan")
        else:
            return Result()
        await self._set_finalizers(rs, finalizers)
        return Result()

    async def _set_finalizers(self, rs: Obj, finalizers: list[str]) -> None:
        m = meta(rs)
        if finalizers:
            updated = copy_json(rs)
            meta(updated)["finalizers"] = finalizers
            await self.storage.update(REPLICASETS, updated, precondition_rv=int(m["resourceVersion"]))
        else:
            await self.storage.delete(
                REPLICASETS,
                str(m.get("namespace")),
                str(m["name"]),
                precondition_rv=int(m["resourceVersion"]),
            )

    async def _create_pod(self, rs: Obj) -> Obj | None:
        for _ in range(3):
            pod = _pod_from_template(rs)
            try:
                created = await self.storage.create(PODS, pod)
            except AlreadyExists:
                continue  # name taken: draw another suffix
            await self.recorder.record(
                rs,
                type="Normal",
                reason="SuccessfulCreate",
                message=f"Created pod: {name_of(created)}",
                component="replicaset-controller",
            )
            return created
        return None

    def _status(self, rs: Obj, active: list[Obj]) -> tuple[dict[str, Any], float | None]:
        spec = rs.get("spec") or {}
        template_labels = dig(spec, "template", "metadata", "labels") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        wall = time.time()
        ready = available = fully = 0
        soonest: float | None = None
        for pod in active:
            labels = labels_of(pod)
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            if pod_ready(pod):
                ready += 1
            ok, left = _pod_available(pod, min_ready, wall)
            if ok:
                available += 1
            elif left is not None:
                soonest = left if soonest is None else min(soonest, left)
        status: dict[str, Any] = {
            k: v
            for k, v in (rs.get("status") or {}).items()
            if k
            not in (
                "replicas",
                "fullyLabeledReplicas",
                "readyReplicas",
                "availableReplicas",
                "observedGeneration",
            )
        }
        # As Kubernetes serialises it: zero counts other than ``replicas`` are omitted.
        status["replicas"] = len(active)
        for field, value in (
            ("fullyLabeledReplicas", fully),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ):
            if value:
                status[field] = value
        generation = meta(rs).get("generation")
        if generation is not None:
            status["observedGeneration"] = int(generation)
        return status, soonest

    async def _delete_quietly(self, rt: ResourceType, namespace: str, name: str) -> bool:
        """Delete; True if this call removed it (False: it was already gone)."""
        try:
            await self.storage.delete(rt, namespace, name)
        except NotFound:
            return False
        return True


def _allocatable_pods(node: Obj) -> int:
    raw = dig(node, "status", "allocatable", "pods")
    try:
        return max(0, int(str(raw)))
    except (TypeError, ValueError):
        return 0


def _node_ip(node: Obj) -> str:
    for addr in dig(node, "status", "addresses") or []:
        if isinstance(addr, dict) and addr.get("type") == "InternalIP":
            return str(addr.get("address", ""))
    return ""


def _free_pod_ip(node: Obj, taken: set[str]) -> str:
    cidr = dig(node, "spec", "podCIDR")
    try:
        network = ipaddress.IPv4Network(str(cidr))
    except ValueError:
        network = ipaddress.IPv4Network("10.0.0.0/24")
    for host in list(network.hosts())[1:]:
        if str(host) not in taken:
            return str(host)
    return str(network.network_address + 1)


def _unschedulable_message(
    nodes: list[Obj], schedulable: list[Obj], capacity: dict[str, int], used: Counter[str]
) -> str:
    if not nodes:
        return "no nodes available to schedule pods"
    reasons: Counter[str] = Counter()
    for node in nodes:
        if not node_ready(node):
            reasons["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"] += 1
        elif dig(node, "spec", "unschedulable"):
            reasons["node(s) were unschedulable"] += 1
        elif used[name_of(node)] >= capacity.get(name_of(node), 0):
            reasons["Too many pods"] += 1
    total = len(nodes)
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return (
        f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are available: "
        f"{total} No preemption victims found for incoming pod."
    )


def _deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order a ReplicaSet deletes them (Kubernetes' ``ActivePods`` ranking, simplified)."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}
    newest_first = sorted(
        pods, key=lambda p: (str(meta(p).get("creationTimestamp", "")), name_of(p)), reverse=True
    )
    return sorted(
        newest_first,
        key=lambda p: (
            bool(dig(p, "spec", "nodeName")),
            phase_rank.get(str(dig(p, "status", "phase")), 0),
            pod_ready(p),
        ),
    )


def _pod_from_template(rs: Obj) -> Obj:
    m = meta(rs)
    template = copy_json(dig(rs, "spec", "template") or {})
    tm = template.get("metadata") or {}
    suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    pod_meta: dict[str, Any] = {
        "name": f"{m['name']}-{suffix}",
        "generateName": f"{m['name']}-",
        "namespace": m.get("namespace"),
        "uid": str(uuid.uuid4()),
        "creationTimestamp": now_rfc3339(),
        "labels": dict(tm.get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": m["name"],
                "uid": m.get("uid"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if tm.get("annotations"):
        pod_meta["annotations"] = dict(tm["annotations"])
    spec = template.get("spec") or {}
    default_pod_spec(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": _qos_class(spec)},
    }
