"""The scheduler and the kubelets of a simulated cluster: pods bound to nodes, then started.

* **scheduler**: binds pending pods, oldest first, to the ready node with the most free slots (ties
  by name); a pod that fits nowhere stays Pending with ``PodScheduled=False/Unschedulable`` and one
  ``FailedScheduling`` Event per episode;
* **kubelets**: a bound pod turns Running and Ready ``start_delay`` seconds after it was bound, with a
  pod IP from its node's range; pods of nodes that are gone are deleted (the pod garbage collector),
  so their ReplicaSets replace them elsewhere or leave them Pending.

Node slots are shared by every pod of the cluster, so the whole cluster is one key of this
controller's queue (:meth:`Scheduler.key`, the cluster's name): two passes never run at once to hand
out the same slot, and a burst of pod changes is one pass.

The reconcile is level-based: it reads nodes and pods fresh, binds and starts what is due, and asks
to be run again when the next start delay will have passed. It never waits and remembers no more
than a kubelet would: the monotonic time each pod was bound, which drives the start delay. It reads
only the pods it acts on, from the storage's indexes (:class:`~federation.sim.podindex.PodIndex`):
the waiting ones, the bound ones not started, and each node's count of slots taken, read afresh for
each binding. Listing (and copying) every pod of the cluster on every change was 24 % of the
simulator's time at ~200 pods per cluster and grew with the square of the pod count. A pass writes
at most :data:`WRITES_PER_PASS` times, lets the event loop serve the API between any two writes (so
``/readyz`` answers while thousands of pods start), and then runs again at once.

Writes: binding sets ``spec.nodeName`` and the pod's status in one write conditional on the version
read, straight to the storage, as Kubernetes' ``pods/binding`` subresource does; the kubelet's and
the scheduler's other writes change ``status`` only, conditional on the version read, which is what
``/status`` stores (the registry's /status path would decode the whole pod again: 293 against 175 µs
for a read and a status write of one pod, measured with both on one loaded machine, on the busiest
path of the simulator); deleting a pod goes through the registry,
so its finalizers hold.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import time
from collections import Counter
from collections.abc import Callable, Mapping

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
from federation.sim.nodes import node_ready
from federation.sim.podindex import PodIndex
from federation.sim.pods import PODS, condition, qos_class

WRITES_PER_PASS = 200
"""At most this many pod writes (bind, start, mark unschedulable, delete) per pass; the pass then asks to
run again at once, and reads the pods afresh. The loop serves other work between any two writes."""


class _Budget:
    def __init__(self, writes: int) -> None:
        self.left = writes

    def spend(self) -> bool:
        """Whether one more write fits in this pass (and count it)."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class Scheduler:
    """The scheduler and kubelets of one cluster (see the module docstring)."""

    def __init__(
        self,
        registry: Registry,
        *,
        pods: PodIndex,
        cluster: str,
        start_delay: float,
        recorder: EventRecorder,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if start_delay < 0:
            raise ValueError("the start delay cannot be negative")
        self.registry = registry
        self.storage = registry.storage
        self.pods = pods
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
        nodes = self.pods.nodes_readonly()
        by_name = {name_of(n): n for n in nodes}
        now = self._clock()
        done = await self._collect(by_name)
        done = await self._schedule(nodes, by_name, now) and done
        next_due, started = await self._start_due(by_name, now)
        if not (done and started):
            return Result(requeue_after=0)  # more to write than one pass may: again, at once
        return Result(requeue_after=next_due)

    async def _collect(self, by_name: dict[str, Obj]) -> bool:
        """Pod garbage collection: delete pods bound to nodes that no longer exist. False if the
        pass's budget ran out first."""
        budget = _Budget(WRITES_PER_PASS)
        for node in self.pods.bound_nodes():
            if node in by_name:
                continue
            for pod in self.pods.bound_to_readonly(node):
                if meta(pod).get("deletionTimestamp") and meta(pod).get("finalizers"):
                    continue  # marked already; deleting it again would change nothing
                if not budget.spend():
                    return False
                await self._delete_quietly(namespace_of(pod), name_of(pod))
                await asyncio.sleep(0)
        return True

    async def _schedule(self, nodes: list[Obj], by_name: dict[str, Obj], now: float) -> bool:
        """Bind waiting pods, oldest first, or mark them unschedulable. False if the pass's budget
        ran out first."""
        budget = _Budget(WRITES_PER_PASS)
        schedulable = [n for n in nodes if node_ready(n) and not dig(n, "spec", "unschedulable")]
        capacity = {name_of(n): _allocatable_pods(n) for n in schedulable}
        # Set while no node has a free slot: the message is then the same for every pod.
        full_message: str | None = None
        waiting = sorted(
            self.pods.waiting_readonly(),
            key=lambda p: (str(meta(p).get("creationTimestamp", "")), namespace_of(p), name_of(p)),
        )
        for pod in waiting:
            if full_message is None:
                used = {n: self.pods.slots_taken(n) for n in capacity}
                free = [n for n in capacity if used[n] < capacity[n]]
                if free:
                    if not budget.spend():
                        return False
                    target = min(free, key=lambda n: (used[n] - capacity[n], used[n], n))
                    await self._bind(pod, by_name[target], now)
                    await asyncio.sleep(0)
                    continue
                full_message = _unschedulable_message(nodes, schedulable, capacity, used)
            if _marked_unschedulable(pod, full_message):
                continue
            if not budget.spend():
                return False
            await self._mark_unschedulable(pod, full_message)
            await asyncio.sleep(0)
            full_message = None  # slots may have been freed while the loop served others
        return True

    async def _start_due(self, by_name: dict[str, Obj], now: float) -> tuple[float | None, bool]:
        """The kubelets: start bound pods whose start delay has passed. Returns the seconds until the
        next one is due, and False if the pass's budget ran out first."""
        budget = _Budget(WRITES_PER_PASS)
        starting = self.pods.starting_readonly()
        live_uids = {str(meta(p).get("uid")) for p in starting}
        for uid in [u for u in self._bound_at if u not in live_uids]:
            del self._bound_at[uid]
        ips: dict[str, _PodIPs] = {}
        next_due: float | None = None
        for pod in starting:
            node = str(dig(pod, "spec", "nodeName"))
            uid = str(meta(pod).get("uid"))
            bound = self._bound_at.setdefault(uid, now)
            left = bound + self.start_delay - now
            if left > 0:
                next_due = left if next_due is None else min(next_due, left)
                continue
            if node not in by_name:
                continue  # its node is gone: its pods are collected
            if not budget.spend():
                return next_due, False
            if node not in ips:
                ips[node] = _PodIPs(by_name[node], in_use=self.pods.ip_in_use)
            await self._start(pod, by_name[node], ips[node])
            await asyncio.sleep(0)
        return next_due, True

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

    async def _mark_unschedulable(self, pod: Obj, message: str) -> None:
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

    async def _start(self, pod: Obj, node: Obj, node_ips: _PodIPs) -> None:
        stamp = now_rfc3339()
        ip = node_ips.take()
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


class _PodIPs:
    """The pod IPs of one node's range as one pass hands them out: the lowest free one first (the
    range's first host is the node's own), from where the last one was found, since a pass only
    takes addresses. Whether a pod holds an address is read from the index, at each step."""

    def __init__(self, node: Obj, *, in_use: Callable[[str, str], bool]) -> None:
        cidr = dig(node, "spec", "podCIDR")
        try:
            network = ipaddress.IPv4Network(str(cidr))
        except ValueError:
            network = ipaddress.IPv4Network("10.0.0.0/24")
        self.node = name_of(node)
        self._in_use = in_use
        self._hosts = itertools.islice(network.hosts(), 1, None)
        self._fallback = str(network.network_address + 1)

    def take(self) -> str:
        for host in self._hosts:
            ip = str(host)
            if not self._in_use(self.node, ip):
                return ip
        return self._fallback


def _marked_unschedulable(pod: Obj, message: str) -> bool:
    """Whether ``pod`` already says it is unschedulable for ``message`` (nothing to write)."""
    current = condition(pod, "PodScheduled")
    return current is not None and current.get("status") == "False" and current.get("message") == message


def _unschedulable_message(
    nodes: list[Obj], schedulable: list[Obj], capacity: Mapping[str, int], used: Mapping[str, int]
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
