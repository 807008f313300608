"""Objects that exist before their clusters are judged are spread over all of them, not the first Ready."""

from __future__ import annotations

import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, WriteOptions
from federation.controllers import ControllerManager
from federation.sim import Simulator
from federation.store import PostgresStorage
from tests.federation_support import eventually, fast_settings, member_replicas, register, running
from tests.integration.test_controllers_division import replica_set

pytestmark = pytest.mark.anyio


async def test_replica_sets_made_before_the_clusters_are_judged_are_spread_evenly(
    federation_storage: PostgresStorage, sim: Simulator
) -> None:
    manager = ControllerManager(federation_storage, settings=fast_settings())
    registry = manager.registry
    await register(manager, sim)
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    await registry.create(REPLICASETS, "shop", replica_set("web", 6), WriteOptions())
    async with running(manager):

        async def spread() -> dict[str, int] | None:
            found = member_replicas(sim, "shop", "web")
            return found if sum(found.values()) == 6 else None

        assert await eventually(spread, within=20, what="6 replicas in the members") == {
            "a": 2,
            "b": 2,
            "c": 2,
        }
