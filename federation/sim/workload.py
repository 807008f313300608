"""What runs inside a simulated cluster besides its API: node pool, scheduler and kubelets, ReplicaSets.

A simulated cluster has no containers, but its API objects move as a real cluster's do. Three
controllers do it, each in a module of its own and each on its own work queue, fed by watches on
the cluster's storage, as Kubernetes runs its controllers side by side:

* the node pool (:mod:`federation.sim.nodepool`), one key for the pool;
* the scheduler and kubelets (:mod:`federation.sim.scheduler`), one key for the whole cluster,
  because node slots are shared by every pod;
* the ReplicaSet controller (:mod:`federation.sim.replicasets`), one key per ReplicaSet.

:class:`Workload` builds them over one registry, starts their queues and watches, and stops them.
A controller that fails retries on its own queue (with backoff) and holds up neither of the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from federation.apimachinery import REPLICASETS, EventRecorder, MemoryStorage, Registry, WorkQueue, feed
from federation.sim.network import Topology
from federation.sim.nodepool import MAX_PODS_PER_NODE, NODEPOOL, NodePool
from federation.sim.nodes import NODES
from federation.sim.podindex import PodIndex
from federation.sim.pods import PODS
from federation.sim.replicasets import ReplicaSetController, ReplicaSetKey
from federation.sim.scheduler import Scheduler


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


async def _no_keys() -> list[ReplicaSetKey]:
    return []


class Workload:
    """The in-cluster controllers of one simulated cluster, with their queues and watches."""

    def __init__(
        self,
        registry: Registry,
        *,
        topology: Topology,
        settings: WorkloadSettings,
        node_count: int,
        recorder: EventRecorder,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(registry.storage, MemoryStorage):
            raise TypeError("a simulated workload runs over a MemoryStorage (it reads pods by its indexes)")
        self.storage = registry.storage
        self.pods = PodIndex(registry.storage)
        self.name = topology.cluster
        self.node_pool = NodePool(
            registry, topology=topology, pods_per_node=settings.pods_per_node, node_count=node_count
        )
        self.scheduler = Scheduler(
            registry,
            pods=self.pods,
            cluster=topology.cluster,
            start_delay=settings.start_delay,
            recorder=recorder,
            clock=clock,
        )
        self.replicasets = ReplicaSetController(registry, pods=self.pods, recorder=recorder)
        self.node_queue: WorkQueue[str] = WorkQueue(self.node_pool.reconcile, name=f"{self.name}/nodepool")
        self.scheduler_queue: WorkQueue[str] = WorkQueue(
            self.scheduler.reconcile, name=f"{self.name}/scheduler"
        )
        self.replicaset_queue: WorkQueue[ReplicaSetKey] = WorkQueue(
            self.replicasets.reconcile, name=f"{self.name}/replicasets"
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def node_count(self) -> int:
        return self.node_pool.node_count

    def set_node_count(self, count: int) -> None:
        """Resize the node pool (its controller acts on it at once)."""
        self.node_pool.set_node_count(count)
        self.node_queue.add(NODEPOOL)

    def start(self) -> None:
        """Start the queues' workers and the watches that feed them (on the running loop)."""
        storage, pool, scheduler, rs = self.storage, self.node_pool, self.scheduler, self.replicasets
        nq, sq, rq = self.node_queue, self.scheduler_queue, self.replicaset_queue
        self._start(nq.run(), "nodepool")
        self._start(sq.run(), "scheduler")
        self._start(rq.run(), "replicasets")
        self._start(feed(storage, NODES, nq, pool.keys_for_node, pool.resync), "nodepool/watch-nodes")
        self._start(
            feed(storage, NODES, sq, scheduler.keys_for_event, scheduler.resync), "scheduler/watch-nodes"
        )
        self._start(
            feed(storage, PODS, sq, scheduler.keys_for_event, scheduler.resync), "scheduler/watch-pods"
        )
        self._start(feed(storage, REPLICASETS, rq, rs.keys_for_replicaset, rs.resync), "replicasets/watch-rs")
        self._start(feed(storage, PODS, rq, rs.keys_for_pod, _no_keys), "replicasets/watch-pods")

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"{self.name}/{name}"))

    async def wait_idle(self) -> None:
        """Until no queue has a key waiting or running (timers may be pending)."""
        queues = (self.node_queue, self.scheduler_queue, self.replicaset_queue)
        while True:
            for queue in queues:
                await queue.wait_idle()
            if all(q.idle for q in queues):
                return

    async def stop(self) -> list[tuple[str, BaseException]]:
        """Stop everything :meth:`start` started; the tasks that had ended with an error, by name."""
        for queue in (self.node_queue, self.scheduler_queue, self.replicaset_queue):
            queue.close()
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        failed = [
            (task.get_name(), result)
            for task, result in zip(self._tasks, results, strict=True)
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError)
        ]
        self._tasks.clear()
        return failed
