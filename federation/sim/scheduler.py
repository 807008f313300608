"""The scheduler and the kubelets of a simulated cluster: pods bound to nodes, then started.

* **scheduler**: binds pending pods, oldest first, to the ready node with the most free slots (ties
  by name); a pod that fits nowhere stays Pending with ``PodScheduled=False/Unschedulable`` and one
  ``FailedScheduling`` Event per episode;
* **kubelets**: a bound pod turns Running and Ready ``start_delay`` seconds after it was bound, with a
  pod IP from its node's range; pods of nodes that are gone are deleted (the pod garbage collector),
  so their ReplicaSets replace them elsewhere or leave them Pending.

Node slots are shared by every pod of the cluster, so the whole cluster is one key of this
controller's queue (:meth:`Scheduler.key`, the cluster's name): one pass places every waiting pod
against one count of free slots, and two passes never run at once to hand out the same slot.

The reconcile is level-based: it reads nodes and pods fresh, binds and starts what is due, and asks
to be run again when the next start delay will have passed. It never waits and remembers no more
than a kubelet would: the monotonic time each pod was bound, which drives the start delay.

Writes: binding sets ``spec.nodeName`` and the pod's status in one write conditional on the version
read, straight to the storage, as Kubernetes' ``pods/binding`` subresource does; the kubelet's and
the scheduler's other writes change ``status`` only, conditional on the version read, which is what
``/status`` stores (the registry's /status path would decode the whole pod again: 293 against 175 µs
for a read and a status write of one pod, measured with both on one loaded machine, on the busiest
path of the simulator); deleting a pod goes through the registry,
so its finalizers hold.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable

from federation.apimachinery import (
    Conflict,
    EventRecorder,
    NotFound,
    Obj,
    Registry,
    Result,
    WatchEvent,
    copy_json,
    dig,
    meta,
    name_of,
    namespace_of,
    now_rfc3339,
    rv_of,
)
from federation.sim.nodepool import hex_id
from federation.sim.nodes import NODES, node_ready
from federation.sim.pods import PODS, TERMINAL_PHASES, condition, pod_active, qos_class


class Scheduler:
    """The scheduler and kubelets of one cluster (see the module docstring)."""

    def __init__(
        self,
        registry: Registry,
        *,
        cluster: str,
        start_delay: float,
        recorder: EventRecorder,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if start_delay < 0:
            raise ValueError("the start delay cannot be negative")
        self.registry = registry
        self.storage = registry.storage
        self.key = cluster
        """The one key of this controller's queue."""
        self.start_delay = start_delay
        self.recorder = recorder
        self._clock = clock
        self._bound_at: dict[str, float] = {}
        """Pod uid -> monotonic time of its binding: the kubelet's own record, drives the start delay."""

    def keys_for_event(self, event: WatchEvent) -> list[str]:
        """Any change of a pod or a node may free or take a slot: the cluster's key."""
        return [self.key]

    async def resync(self) -> list[str]:
        return [self.key]

    async def reconcile(self, key: str) -> Result:
        nodes = (await self.storage.list(NODES, None)).items
        pods = (await self.storage.list(PODS, None)).items
        by_name = {name_of(n): n for n in nodes}
        now = self._clock()

        # Pod garbage collection: pods bound to nodes that no longer exist.
        live: list[Obj] = []
        for pod in pods:
            node = dig(pod, "spec", "nodeName")
            if node and node not in by_name:
                await self._delete_quietly(namespace_of(pod), name_of(pod))
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
            if node and dig(pod, "status", "phase") not in TERMINAL_PHASES:
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
            left = bound + self.start_delay - now
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
            await self.storage.update(PODS, bound, precondition_rv=rv_of(pod))
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
        current = condition(pod, "PodScheduled")
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
            await self.storage.update(PODS, changed, precondition_rv=rv_of(pod))
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
            qosClass=qos_class(running.get("spec") or {}),
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
                "imageID": f"sim://{c.get('image')}@sha256:{hex_id(str(c.get('image')))}",
                "containerID": f"containerd://{hex_id(str(meta(pod).get('uid')), str(c.get('name')))}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}},
                "lastState": {},
            }
            for c in running["spec"].get("containers") or []
        ]
        try:
            await self.storage.update(PODS, running, precondition_rv=rv_of(pod))
        except (NotFound, Conflict):
            return

    async def _delete_quietly(self, namespace: str, name: str) -> bool:
        """Delete a pod through the registry; True if this call removed or marked it."""
        try:
            await self.registry.delete(PODS, namespace, name)
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
