"""The simulated node pool, ReplicaSet controller, scheduler and kubelets, straight over a
MemoryStorage (no HTTP).

Each test runs its own event loop (``asyncio.run``) with the controllers of one cluster, each on its
queue fed by watches, as :class:`federation.sim.cluster.SimulatedCluster` runs them
(:class:`federation.sim.workload.Workload`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from federation.apimachinery import Registry, SchemaSet
from federation.apimachinery.errors import ApiError
from federation.apimachinery.events import EventRecorder
from federation.apimachinery.kinds import EVENTS, NAMESPACES, REPLICASETS
from federation.apimachinery.memory import MemoryStorage
from federation.apimachinery.objects import meta
from federation.apimachinery.queueing import Result, WorkQueue
from federation.apimachinery.resources import Obj
from federation.sim import scheduler as scheduler_module
from federation.sim.kinds import cluster_scheme
from federation.sim.network import ClusterNetwork, Topology
from federation.sim.nodepool import NODEPOOL
from federation.sim.nodes import NODES
from federation.sim.pods import PODS
from federation.sim.replicasets import deletion_order as _deletion_order
from federation.sim.replicasets import pod_available as _pod_available
from federation.sim.workload import Workload, WorkloadSettings

NS = "shop"
SCHEMAS = SchemaSet()
"""One per module, as one per server: each schema is compiled once."""


class Harness:
    def __init__(self, storage: MemoryStorage, workload: Workload) -> None:
        self.storage = storage
        self.workload = workload
        self.queue = workload.node_queue

    async def until(self, check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not await check():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.01)

    async def rs(self, name: str = "web") -> Obj:
        return await self.storage.get(REPLICASETS, NS, name)

    async def pods(self) -> list[Obj]:
        return (await self.storage.list(PODS, NS)).items

    async def phases(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pod in await self.pods():
            phase = pod["status"]["phase"]
            out[phase] = out.get(phase, 0) + 1
        return out

    async def ready(self, want: int, name: str = "web") -> bool:
        status = (await self.rs(name)).get("status") or {}
        return bool(status.get("readyReplicas", 0) == want)

    async def scale(self, replicas: int, name: str = "web") -> None:
        rs = await self.rs(name)
        rs["spec"]["replicas"] = replicas
        meta(rs)["generation"] = int(meta(rs)["generation"]) + 1
        await self.storage.update(REPLICASETS, rs)

    async def events(self, reason: str) -> list[Obj]:
        return [e for e in (await self.storage.list(EVENTS, None)).items if e["reason"] == reason]


def replicaset(name: str = "web", replicas: int = 3, *, uid: str = "uid-web") -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS, "uid": uid, "generation": 1},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
        "status": {"replicas": 0},
    }


@asynccontextmanager
async def cluster(
    *, nodes: int = 2, pods_per_node: int = 2, start_delay: float = 0.0
) -> AsyncIterator[Harness]:
    storage = MemoryStorage()
    await storage.create(NAMESPACES, {"metadata": {"name": NS, "uid": "ns"}, "status": {"phase": "Active"}})
    network = ClusterNetwork("10.128.0.0/16")
    workload = Workload(
        Registry(cluster_scheme(network), storage, SCHEMAS),
        topology=Topology("us-east1", "us-east1"),
        settings=WorkloadSettings(pods_per_node=pods_per_node, start_delay=start_delay),
        node_count=nodes,
        recorder=EventRecorder(storage, host="test"),
    )
    workload.start()
    harness = Harness(storage, workload)
    try:
        await harness.until(lambda: _count(storage, NODES, None, nodes))
        yield harness
    finally:
        assert await workload.stop() == []
        storage.cache.close()


async def _count(storage: MemoryStorage, rt: Any, ns: str | None, want: int) -> bool:
    return len((await storage.list(rt, ns)).items) == want


def run(coro: Awaitable[None]) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro, timeout=20)

    asyncio.run(main())


def test_nodes_carry_region_and_zone_labels_and_capacity() -> None:
    async def scenario() -> None:
        async with cluster(nodes=3, pods_per_node=7) as h:
            nodes = (await h.storage.list(NODES, None)).items
            assert [meta(n)["name"] for n in nodes] == [
                "us-east1-node-0",
                "us-east1-node-1",
                "us-east1-node-2",
            ]
            labels = [meta(n)["labels"] for n in nodes]
            assert {lab["topology.kubernetes.io/region"] for lab in labels} == {"us-east1"}
            assert [lab["topology.kubernetes.io/zone"] for lab in labels] == [
                "us-east1-a",
                "us-east1-b",
                "us-east1-c",
            ]
            assert {n["status"]["allocatable"]["pods"] for n in nodes} == {"7"}

    run(scenario())


def test_more_replicas_than_slots_leaves_the_rest_pending_with_failed_scheduling() -> None:
    async def scenario() -> None:
        async with cluster(nodes=2, pods_per_node=2) as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=6))
            await h.until(lambda: h.ready(4))
            assert await h.phases() == {"Running": 4, "Pending": 2}
            status = (await h.rs())["status"]
            assert status == {
                "replicas": 6,
                "fullyLabeledReplicas": 6,
                "readyReplicas": 4,
                "availableReplicas": 4,
                "observedGeneration": 1,
            }
            pending = [p for p in await h.pods() if p["status"]["phase"] == "Pending"]
            for pod in pending:
                (cond,) = pod["status"]["conditions"]
                assert (cond["type"], cond["status"], cond["reason"]) == (
                    "PodScheduled",
                    "False",
                    "Unschedulable",
                )
                assert "0/2 nodes are available: 2 Too many pods" in cond["message"]
            failed = await h.events("FailedScheduling")
            assert sorted(e["involvedObject"]["name"] for e in failed) == sorted(
                meta(p)["name"] for p in pending
            )
            assert {e["type"] for e in failed} == {"Warning"}
            assert len(await h.events("SuccessfulCreate")) == 6

    run(scenario())


def test_passes_of_a_few_writes_bind_start_and_mark_every_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass writes at most ``WRITES_PER_PASS`` times and runs again at once: with 3, the same
    outcome as in one pass, distinct pod IPs, one FailedScheduling Event per pending pod."""
    monkeypatch.setattr(scheduler_module, "WRITES_PER_PASS", 3)

    async def scenario() -> None:
        async with cluster(nodes=2, pods_per_node=10) as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=24))
            await h.until(lambda: h.ready(20))
            await h.until(lambda: _failed_scheduling(h, 4))
            assert await h.phases() == {"Running": 20, "Pending": 4}
            running = [p for p in await h.pods() if p["status"]["phase"] == "Running"]
            by_node = {(p["spec"]["nodeName"], p["status"]["podIP"]) for p in running}
            assert len(by_node) == 20
            assert {node for node, _ in by_node} == {"us-east1-node-0", "us-east1-node-1"}

    run(scenario())


async def _failed_scheduling(h: Harness, want: int) -> bool:
    return len(await h.events("FailedScheduling")) == want


def test_scaling_down_frees_slots_and_pending_pods_start() -> None:
    async def scenario() -> None:
        async with cluster(nodes=1, pods_per_node=2) as h:
            await h.storage.create(REPLICASETS, replicaset("web", 2, uid="a"))
            await h.until(lambda: h.ready(2, "web"))
            await h.storage.create(REPLICASETS, replicaset("api", 2, uid="b"))
            await h.until(lambda: _pending_count(h, 2))
            await h.scale(1, "web")
            await h.until(lambda: h.ready(1, "api"))
            assert (await h.rs("web"))["status"]["readyReplicas"] == 1
            assert (await h.rs("web"))["status"]["observedGeneration"] == 2

    run(scenario())


async def _pending_count(h: Harness, want: int) -> bool:
    return (await h.phases()).get("Pending", 0) == want


def test_scale_down_deletes_pending_pods_before_running_ones() -> None:
    async def scenario() -> None:
        async with cluster(nodes=1, pods_per_node=2) as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=4))
            await h.until(lambda: h.ready(2))
            running = {meta(p)["name"] for p in await h.pods() if p["status"]["phase"] == "Running"}
            await h.scale(2)
            await h.until(lambda: _count(h.storage, PODS, NS, 2))
            assert {meta(p)["name"] for p in await h.pods()} == running
            assert len(await h.events("SuccessfulDelete")) == 2

    run(scenario())


def test_pods_become_ready_only_after_the_start_delay() -> None:
    async def scenario() -> None:
        async with cluster(nodes=1, pods_per_node=3, start_delay=0.4) as h:
            started = asyncio.get_running_loop().time()
            await h.storage.create(REPLICASETS, replicaset(replicas=2))
            await h.until(lambda: _bound(h, 2))
            pod = (await h.pods())[0]
            assert pod["status"]["phase"] == "Pending"
            assert pod["status"]["containerStatuses"][0]["state"] == {
                "waiting": {"reason": "ContainerCreating"}
            }
            assert (await h.rs()).get("status", {}).get("readyReplicas", 0) == 0
            await h.until(lambda: h.ready(2))
            assert asyncio.get_running_loop().time() - started >= 0.4
            pod = (await h.pods())[0]
            assert pod["status"]["podIP"].startswith("10.0.0.")
            assert pod["status"]["containerStatuses"][0]["ready"] is True

    run(scenario())


async def _bound(h: Harness, want: int) -> bool:
    return sum(1 for p in await h.pods() if p["spec"].get("nodeName")) == want


def test_losing_nodes_evicts_their_pods_and_adding_nodes_starts_them_again() -> None:
    async def scenario() -> None:
        async with cluster(nodes=3, pods_per_node=2) as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=6))
            await h.until(lambda: h.ready(6))
            h.workload.set_node_count(1)
            h.queue.add(NODEPOOL)
            await h.until(lambda: h.ready(2))
            await h.until(lambda: _pending_count(h, 4))
            assert {
                p["spec"].get("nodeName") for p in await h.pods() if p["status"]["phase"] == "Running"
            } == {"us-east1-node-0"}
            h.workload.set_node_count(3)
            h.queue.add(NODEPOOL)
            await h.until(lambda: h.ready(6))

    run(scenario())


def test_deleting_a_managed_node_by_hand_brings_it_back() -> None:
    async def scenario() -> None:
        async with cluster(nodes=2) as h:
            await h.storage.delete(NODES, "", "us-east1-node-1")
            await h.until(lambda: _count(h.storage, NODES, None, 2))

    run(scenario())


def test_pods_of_a_deleted_replicaset_are_garbage_collected() -> None:
    async def scenario() -> None:
        async with cluster() as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=3))
            await h.until(lambda: _count(h.storage, PODS, NS, 3))
            await h.storage.delete(REPLICASETS, NS, "web")
            await h.until(lambda: _count(h.storage, PODS, NS, 0))

    run(scenario())


def test_a_recreated_namesake_does_not_inherit_the_old_pods() -> None:
    async def scenario() -> None:
        async with cluster(nodes=2, pods_per_node=5) as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=2, uid="first"))
            await h.until(lambda: h.ready(2))
            await h.storage.delete(REPLICASETS, NS, "web")
            await h.storage.create(REPLICASETS, replicaset(replicas=1, uid="second"))
            await h.until(lambda: _count(h.storage, PODS, NS, 1))
            await h.until(lambda: h.ready(1))
            (pod,) = await h.pods()
            assert meta(pod)["ownerReferences"][0]["uid"] == "second"

    run(scenario())


def test_foreground_deletion_removes_pods_then_the_replicaset() -> None:
    async def scenario() -> None:
        async with cluster() as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=2))
            await h.until(lambda: _count(h.storage, PODS, NS, 2))
            rs = await h.rs()
            meta(rs)["finalizers"] = ["foregroundDeletion"]
            meta(rs)["deletionTimestamp"] = "2025-01-01T00:00:00Z"
            await h.storage.update(REPLICASETS, rs)
            await h.until(lambda: _count(h.storage, REPLICASETS, NS, 0))
            assert await h.pods() == []

    run(scenario())


def test_orphan_deletion_keeps_the_pods_without_owner() -> None:
    async def scenario() -> None:
        async with cluster() as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=2))
            await h.until(lambda: _count(h.storage, PODS, NS, 2))
            rs = await h.rs()
            meta(rs)["finalizers"] = ["orphan"]
            meta(rs)["deletionTimestamp"] = "2025-01-01T00:00:00Z"
            await h.storage.update(REPLICASETS, rs)
            await h.until(lambda: _count(h.storage, REPLICASETS, NS, 0))
            pods = await h.pods()
            assert len(pods) == 2
            assert all("ownerReferences" not in meta(p) for p in pods)

    run(scenario())


def test_a_pod_relabelled_out_of_the_selector_is_released_and_replaced() -> None:
    async def scenario() -> None:
        async with cluster(nodes=2, pods_per_node=5) as h:
            await h.storage.create(REPLICASETS, replicaset(replicas=2))
            await h.until(lambda: h.ready(2))
            pod = (await h.pods())[0]
            meta(pod)["labels"] = {"app": "debug"}
            await h.storage.update(PODS, pod)
            await h.until(lambda: _count(h.storage, PODS, NS, 3))
            await h.until(lambda: h.ready(2))
            released = await h.storage.get(PODS, NS, meta(pod)["name"])
            assert "ownerReferences" not in meta(released)

    run(scenario())


def test_nothing_is_created_in_a_terminating_namespace() -> None:
    async def scenario() -> None:
        async with cluster() as h:
            ns = await h.storage.get(NAMESPACES, "", NS)
            meta(ns)["deletionTimestamp"] = "2025-01-01T00:00:00Z"
            await h.storage.update(NAMESPACES, ns)
            await h.storage.create(REPLICASETS, replicaset(replicas=2))
            await h.workload.wait_idle()
            await asyncio.sleep(0.05)
            await h.workload.wait_idle()
            assert await h.pods() == []
            assert (await h.storage.list(EVENTS, None)).items == []

    run(scenario())


def test_reconcile_of_a_missing_replicaset_is_done() -> None:
    async def scenario() -> None:
        async with cluster() as h:
            result = await h.workload.replicasets.reconcile((NS, "absent"))
            assert result.requeue_after is None

    run(scenario())


def test_node_count_is_bounded() -> None:
    async def scenario() -> None:
        async with cluster() as h:
            with pytest.raises(ValueError, match="between 0 and 250"):
                h.workload.set_node_count(251)

    run(scenario())


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="pods per node"):
        WorkloadSettings(pods_per_node=0)
    with pytest.raises(ValueError, match="negative"):
        WorkloadSettings(start_delay=-1)


def _pod(name: str, *, node: str | None, phase: str, ready: bool, created: str) -> Obj:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_deletion_order_prefers_unscheduled_then_pending_then_unready_then_newest() -> None:
    pods = [
        _pod("old-ready", node="n", phase="Running", ready=True, created="2025-01-01T00:00:00Z"),
        _pod("new-ready", node="n", phase="Running", ready=True, created="2025-01-02T00:00:00Z"),
        _pod("unready", node="n", phase="Running", ready=False, created="2025-01-01T00:00:00Z"),
        _pod("creating", node="n", phase="Pending", ready=False, created="2025-01-01T00:00:00Z"),
        _pod("unscheduled", node=None, phase="Pending", ready=False, created="2025-01-01T00:00:00Z"),
    ]
    order = [meta(p)["name"] for p in _deletion_order(pods)]
    assert order == ["unscheduled", "creating", "unready", "new-ready", "old-ready"]


@pytest.mark.parametrize(
    ("min_ready", "ready_for", "expected"),
    [(0, 0.0, (True, None)), (10, 15.0, (True, None)), (10, 4.0, (False, 6.0))],
    ids=["no-min-ready", "long-enough", "not-yet"],
)
def test_availability_honours_min_ready_seconds(
    min_ready: int, ready_for: float, expected: tuple[bool, Any]
) -> None:
    since = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    pod = {
        "metadata": {},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        },
    }
    ok, left = _pod_available(pod, min_ready, since.timestamp() + ready_for)
    assert ok is expected[0]
    assert left == (pytest.approx(expected[1]) if expected[1] is not None else None)


def test_conflicts_are_retried_by_the_queue() -> None:
    async def scenario() -> None:
        calls: list[str] = []
        third = asyncio.Event()

        async def flaky(key: str) -> Result:
            calls.append(key)
            if len(calls) < 3:
                raise ApiError(409, "Conflict", "try again")
            third.set()
            return Result()

        queue: WorkQueue[str] = WorkQueue(flaky, name="flaky")
        worker = asyncio.create_task(queue.run())
        queue.add("k")
        await asyncio.wait_for(third.wait(), timeout=2)
        queue.close()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        assert calls == ["k", "k", "k"]

    run(scenario())
