"""Failover end to end: a member taken down leaves placement in seconds, its replicas go elsewhere."""

from __future__ import annotations

import time

import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, WriteOptions
from federation.controllers import ControllerManager
from federation.sim import Simulator
from tests.federation_support import (
    eventually,
    member_ready,
    member_replicas,
)
from tests.integration.test_controllers_division import replica_set

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["down", "blackhole"])
async def test_a_cluster_taken_down_loses_its_replicas_to_the_others(
    manager: ControllerManager, sim: Simulator, mode: str
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    await registry.create(REPLICASETS, "shop", replica_set("web", 9), WriteOptions())

    async def everywhere() -> dict[str, int] | None:
        ready = member_ready(sim, "shop", "web")
        return ready if ready == {"a": 3, "b": 3, "c": 3} else None

    await eventually(everywhere, within=30, what="3 ready replicas in each member")
    failed_at = time.monotonic()
    sim.fail("a", mode)  # type: ignore[arg-type]

    async def offline() -> bool:
        seat = manager.fleet.get("a")
        return seat is not None and not seat.ready

    await eventually(offline, within=10, interval=0.05, what="a Offline")
    offline_after = time.monotonic() - failed_at

    async def moved() -> dict[str, int] | None:
        found = member_ready(sim, "shop", "web")
        return found if found.get("b", 0) + found.get("c", 0) == 9 else None

    await eventually(moved, within=20, what="9 ready replicas in b and c")
    moved_after = time.monotonic() - failed_at
    print(f"{mode}: Offline after {offline_after:.2f} s, 9 ready in b and c after {moved_after:.2f} s")
    assert offline_after < (3.5 if mode == "down" else 5.5)
    assert member_replicas(sim, "shop", "web")["a"] == 3  # nothing deleted while it was away

    async def status_shows() -> bool:
        rs = await registry.get(REPLICASETS, "shop", "web")
        return rs.get("status", {}).get("readyReplicas") == 9

    await eventually(status_shows, within=10, what="the federated status at 9 ready")
