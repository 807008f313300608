"""Capacity end to end: a cluster with too few pod slots keeps what fits and the rest go elsewhere after
the unschedulable grace; with no room anywhere the shortfall is reported and nothing is deleted.

Real Postgres, simulated clusters (some with one small node) over HTTPS through the official client,
the controllers running in the test's event loop (``unschedulable_grace=2.0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, Obj, WriteOptions
from federation.apis import PLACEMENTS, placement_name
from federation.controllers import ControllerManager
from federation.sim import ClusterSpec, Simulator
from federation.store import PostgresStorage
from tests.federation_support import (
    all_ready,
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

UNSCHEDULABLE = "federation_replicaset_unschedulable_replicas"


@contextlib.asynccontextmanager
async def federation(storage: PostgresStorage, sim: Simulator) -> AsyncIterator[ControllerManager]:
    manager = ControllerManager(storage, settings=fast_settings())
    assert manager.settings.unschedulable_grace == 2.0
    await register(manager, sim)
    async with running(manager):
        await all_ready(manager, sim.names)
        await manager.registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
        yield manager


def small(name: str) -> ClusterSpec:
    return ClusterSpec(name, nodes=1, pods_per_node=2, start_delay=0.2)


def roomy(name: str) -> ClusterSpec:
    return ClusterSpec(name, start_delay=0.2)


async def test_what_does_not_fit_goes_elsewhere_after_the_grace(
    federation_storage: PostgresStorage, tmp_path: Path
) -> None:
    with Simulator([small("a"), roomy("b"), roomy("c")], kubeconfig=tmp_path / "sim.kubeconfig") as sim:
        async with federation(federation_storage, sim) as manager:
            created_at = time.monotonic()
            await manager.registry.create(REPLICASETS, "shop", replica_set("web", 9), WriteOptions())

            async def spilled() -> dict[str, int] | None:
                ready = member_ready(sim, "shop", "web")
                spec = member_replicas(sim, "shop", "web")
                return ready if spec.get("a") == 2 and ready == spec and sum(ready.values()) == 9 else None

            ready = await eventually(spilled, within=30, what="2 in a, the other 7 ready in b and c")
            print(
                f"9 replicas over a (2 pod slots), b, c: {ready} after {time.monotonic() - created_at:.2f} s"
            )
            assert sample(UNSCHEDULABLE, namespace="shop", replicaset="web") == 0
            placement = await manager.registry.get(PLACEMENTS, "shop", placement_name("ReplicaSet", "web"))
            assert placement["spec"]["unschedulable"] == 0


async def test_with_no_room_anywhere_the_shortfall_is_reported_and_nothing_deleted(
    federation_storage: PostgresStorage, tmp_path: Path
) -> None:
    with Simulator([small("a"), small("b"), small("c")], kubeconfig=tmp_path / "sim.kubeconfig") as sim:
        async with federation(federation_storage, sim) as manager:
            await manager.registry.create(REPLICASETS, "shop", replica_set("web", 9), WriteOptions())

            async def placed() -> bool:
                return member_replicas(sim, "shop", "web") == {"a": 3, "b": 3, "c": 3} and member_ready(
                    sim, "shop", "web"
                ) == {"a": 2, "b": 2, "c": 2}

            await eventually(placed, within=20, what="3 in each member, 2 of them running")

            async def reported() -> bool:
                placement = await manager.registry.get(
                    PLACEMENTS, "shop", placement_name("ReplicaSet", "web")
                )
                return (
                    placement["spec"].get("unschedulable") == 3
                    and sample(UNSCHEDULABLE, namespace="shop", replicaset="web") == 3
                )

            # From here on, every running pod stays: each member keeps its 2 ready replicas.
            lowest: dict[str, int] = {"a": 2, "b": 2, "c": 2}

            async def reported_and_watched() -> bool:
                for cluster, n in member_ready(sim, "shop", "web").items():
                    lowest[cluster] = min(lowest[cluster], n)
                return await reported()

            await eventually(
                reported_and_watched, within=15, what="3 unschedulable in the Placement and the metric"
            )

            # The shortfall may be reported as it grows (one Event per new number, as each member is
            # found full past the grace): the one that matters says all 3.
            async def full_shortfall() -> list[Obj]:
                found = await events_about(manager, "shop", "web", reason="Unschedulable")
                return [e for e in found if "3 replicas" in str(e.get("message"))]

            warnings = await eventually(full_shortfall, within=10, what="an Unschedulable Event of 3")
            assert warnings[0]["type"] == "Warning"
            # Well past the grace, nothing is taken away: the members keep their replicas and pods.
            held = member_replicas(sim, "shop", "web")
            assert sum(held.values()) == 9
            until = time.monotonic() + 4.0
            while time.monotonic() < until:
                assert member_replicas(sim, "shop", "web") == held
                for cluster, n in member_ready(sim, "shop", "web").items():
                    lowest[cluster] = min(lowest[cluster], n)
                await asyncio.sleep(0.1)
            print(f"no room anywhere: members hold {held}, ready never below {lowest}")
            assert lowest == {"a": 2, "b": 2, "c": 2}
