"""What the controllers report in Prometheus after a propagation, and that the steady state makes no
member writes.

Real Postgres, three simulated clusters over HTTPS through the official client, the controllers
running in the test's event loop; metrics read from this process's Prometheus registry (the one the
controller's /metrics serves), as differences from before the test, since counters only grow.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from federation.apimachinery import NAMESPACES, REPLICASETS, SECRETS, WriteOptions
from federation.controllers import ControllerManager
from federation.sim import Simulator
from tests.federation_support import (
    eventually,
    member_get,
    member_ready,
    member_replicas,
    sample,
)
from tests.integration.test_controllers_division import replica_set
from tests.integration.test_controllers_secrets import secret

pytestmark = pytest.mark.anyio

PROPAGATION = "federation_propagation_total"
KINDS = ("Namespace", "Secret", "ReplicaSet")
WRITES = ("created", "updated", "deleted")


def writes(clusters: list[str]) -> dict[tuple[str, str, str], float]:
    return {
        (c, k, r): sample(PROPAGATION, cluster=c, kind=k, result=r)
        for c in clusters
        for k in KINDS
        for r in WRITES
    }


def reconciles(controller: str) -> float:
    """federation_reconcile_total summed over results, for one controller (queue) name."""
    return sum(
        s.value
        for metric in REGISTRY.collect()
        if metric.name == "federation_reconcile"
        for s in metric.samples
        if s.name == "federation_reconcile_total" and s.labels.get("controller") == controller
    )


async def converged(manager: ControllerManager, sim: Simulator) -> None:
    async def check() -> bool:
        rs = await manager.registry.get(REPLICASETS, "shop", "web")
        status = rs.get("status") or {}
        return (
            member_ready(sim, "shop", "web") == {"a": 2, "b": 2, "c": 2}
            and member_replicas(sim, "shop", "web") == {"a": 2, "b": 2, "c": 2}
            and all(member_get(sim, c, SECRETS, "shop", "db") is not None for c in sim.names)
            and status.get("readyReplicas") == 6
            and status.get("observedGeneration") == rs["metadata"]["generation"]
            and manager.idle()
        )

    await eventually(check, within=30, what="everything in place and reported")


async def create_objects(manager: ControllerManager) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    await registry.create(SECRETS, "shop", secret("db", "one"), WriteOptions())
    await registry.create(REPLICASETS, "shop", replica_set("web", 6), WriteOptions())


async def test_a_propagation_is_counted_and_replicas_reported_per_cluster(
    manager: ControllerManager, sim: Simulator
) -> None:
    before = writes(sim.names)
    await create_objects(manager)
    await converged(manager, sim)
    after = writes(sim.names)
    for cluster in sim.names:
        for kind in KINDS:
            assert after[(cluster, kind, "created")] - before[(cluster, kind, "created")] == 1, (
                cluster,
                kind,
            )

    async def replicas_reported() -> bool:
        desired = member_replicas(sim, "shop", "web")
        ready = member_ready(sim, "shop", "web")
        labels = {"namespace": "shop", "replicaset": "web"}
        return all(
            sample("federation_replicaset_replicas", **labels, cluster=c, state="desired") == desired[c]
            and sample("federation_replicaset_replicas", **labels, cluster=c, state="ready") == ready[c]
            for c in sim.names
        )

    await eventually(replicas_reported, within=10, what="federation_replicaset_replicas as the members say")
    for controller in ("health", "placement", "status", "propagation/a", "propagation/b", "propagation/c"):
        assert reconciles(controller) > 0, controller


async def test_the_steady_state_makes_no_member_writes(manager: ControllerManager, sim: Simulator) -> None:
    await create_objects(manager)
    await converged(manager, sim)
    before = writes(sim.names)
    versions = {
        c: (
            (member_get(sim, c, SECRETS, "shop", "db") or {})["metadata"]["resourceVersion"],
            (member_get(sim, c, REPLICASETS, "shop", "web") or {})["metadata"]["resourceVersion"],
        )
        for c in sim.names
    }
    await asyncio.sleep(5.0)  # the claim is about a span of time: nothing may happen in it
    changed = {key: after - before[key] for key, after in writes(sim.names).items() if after != before[key]}
    assert changed == {}
    assert {
        c: (
            (member_get(sim, c, SECRETS, "shop", "db") or {})["metadata"]["resourceVersion"],
            (member_get(sim, c, REPLICASETS, "shop", "web") or {})["metadata"]["resourceVersion"],
        )
        for c in sim.names
    } == versions
