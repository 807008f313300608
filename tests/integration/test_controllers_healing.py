"""Failover and return, as a user sees them: one dropped probe flips nothing; a cluster that comes back
is reconciled to the current plan and, with ``rebalance``, gets its replicas back without the
federation's ready replicas dipping below the desired count (make-before-break); status and metrics
show every step.

Real Postgres, three simulated clusters over HTTPS through the official client, the controllers
running in the test's event loop. Faults only through the simulator.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, WriteOptions
from federation.apis import PLACEMENTS, REPLICA_SET_PREFERENCES, placement_name
from federation.controllers import ControllerManager
from federation.sim import Simulator
from federation.store import PostgresStorage
from tests.federation_support import (
    all_ready,
    change,
    events_about,
    eventually,
    fast_settings,
    member_ready,
    member_replicas,
    register,
    running,
    sample,
)
from tests.integration.test_controllers_division import replica_set

pytestmark = pytest.mark.anyio


@pytest.fixture
async def manager(federation_storage: PostgresStorage, sim: Simulator) -> AsyncIterator[ControllerManager]:
    m = ControllerManager(federation_storage, settings=fast_settings())
    await register(m, sim)  # with "default", where Events of a Cluster (cluster-scoped) go
    async with running(m):
        await all_ready(m, sim.names)
        yield m


def is_ready(manager: ControllerManager, name: str) -> bool:
    seat = manager.fleet.get(name)
    return seat is not None and seat.ready


async def placement_states(manager: ControllerManager, namespace: str, name: str) -> dict[str, str]:
    placement = await manager.registry.get(PLACEMENTS, namespace, placement_name("ReplicaSet", name))
    return {e["name"]: e.get("state") for e in (placement.get("status") or {}).get("clusters") or []}


async def test_a_single_dropped_probe_does_not_flip_a_cluster(
    manager: ControllerManager, sim: Simulator
) -> None:
    assert manager.settings.probe_period == 1.0
    assert manager.settings.failure_threshold == 2
    samples: list[bool] = []
    sim.fail("a", "blackhole")
    healed_at = time.monotonic() + 1.2
    while time.monotonic() < healed_at:
        samples.append(is_ready(manager, "a"))
        await asyncio.sleep(0.05)
    sim.heal("a")
    # Long enough for a probe held by the black hole to end and the next ones to succeed.
    until = time.monotonic() + 3.0
    while time.monotonic() < until:
        samples.append(is_ready(manager, "a"))
        await asyncio.sleep(0.05)
    print(f"{len(samples)} samples of a's readiness over 4.2 s: {samples.count(False)} not Ready")
    assert all(samples)
    assert sample("federation_cluster_ready", cluster="a") == 1
    assert await events_about(manager, "default", "a", reason="ClusterOffline") == []


@pytest.mark.parametrize("mode", ["down", "blackhole"])
async def test_a_cluster_that_returns_gets_its_replicas_back_make_before_break(
    manager: ControllerManager, sim: Simulator, mode: str
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    prefs = {"rebalance": True, "clusters": {"*": {"weight": 1}}}
    await registry.create(
        REPLICASETS,
        "shop",
        replica_set("web", 9, {REPLICA_SET_PREFERENCES: json.dumps(prefs)}),
        WriteOptions(),
    )

    async def ready_as(want: dict[str, int]) -> bool:
        return member_ready(sim, "shop", "web") == want and member_replicas(sim, "shop", "web") == want

    await eventually(lambda: ready_as({"a": 3, "b": 3, "c": 3}), within=30, what="3 ready in each member")
    failovers = sample("federation_failovers_total", cluster="a")
    assert sample("federation_cluster_ready", cluster="a") == 1

    failed_at = time.monotonic()
    sim.fail("a", mode)  # type: ignore[arg-type]
    await eventually(lambda: _offline(manager, "a"), within=10, interval=0.05, what="a Offline")
    offline_after = time.monotonic() - failed_at
    await eventually(lambda: _gauge_is(0), within=1.0, interval=0.02, what="federation_cluster_ready{a} 0")

    async def moved() -> bool:
        ready = member_ready(sim, "shop", "web")
        return ready["b"] + ready["c"] == 9

    await eventually(moved, within=20, what="9 ready in b and c")
    assert sample("federation_failovers_total", cluster="a") == failovers + 1
    assert await events_about(manager, "default", "a", reason="ClusterOffline")

    async def stale() -> dict[str, str] | None:
        states = await placement_states(manager, "shop", "web")
        return states if states.get("a") == "Stale" else None

    await eventually(stale, within=10, what="a Stale in the Placement's status")

    async def federated_ready(n: int) -> bool:
        rs = await registry.get(REPLICASETS, "shop", "web")
        return (rs.get("status") or {}).get("readyReplicas") == n

    await eventually(lambda: federated_ready(9), within=10, what="the federated status at 9 ready")

    # While a is away, the ReplicaSet grows: a's copy (still 3, untouched) is behind the plan.
    await change(manager, REPLICASETS, "shop", "web", lambda rs: rs["spec"].update(replicas=12))
    await eventually(
        lambda: _sums_to(sim, {"b", "c"}, 12), within=20, what="12 ready in b and c while a is away"
    )
    assert member_replicas(sim, "shop", "web")["a"] == 3  # nothing written to a while it was away

    sim.heal("a")
    healed_at = time.monotonic()
    lowest = 12
    while True:
        ready = member_ready(sim, "shop", "web")
        lowest = min(lowest, sum(ready.values()))
        if ready == {"a": 4, "b": 4, "c": 4} and member_replicas(sim, "shop", "web") == ready:
            break
        assert time.monotonic() - healed_at < 30, f"not settled 30 s after healing: {ready}"
        await asyncio.sleep(0.1)
    settled_after = time.monotonic() - healed_at
    print(
        f"{mode}: Offline after {offline_after:.2f} s; after healing, 4/4/4 ready in {settled_after:.2f} s, "
        f"ready replicas never below {lowest}"
    )
    assert lowest >= 12
    assert is_ready(manager, "a")
    await eventually(lambda: _gauge_is(1), within=1.0, interval=0.02, what="federation_cluster_ready{a} 1")
    await eventually(lambda: federated_ready(12), within=10, what="the federated status at 12 ready")

    async def all_states_ready() -> bool:
        return await placement_states(manager, "shop", "web") == {"a": "Ready", "b": "Ready", "c": "Ready"}

    await eventually(all_states_ready, within=10, what="every cluster Ready in the Placement's status")
    assert sample("federation_failovers_total", cluster="a") == failovers + 1


async def _gauge_is(value: float) -> bool:
    """The health controller sets the gauge in the reconcile that writes the condition (just after)."""
    return sample("federation_cluster_ready", cluster="a") == value


async def _offline(manager: ControllerManager, name: str) -> bool:
    return not is_ready(manager, name)


async def _sums_to(sim: Simulator, clusters: set[str], total: int) -> bool:
    ready = member_ready(sim, "shop", "web")
    return sum(n for c, n in ready.items() if c in clusters) == total
