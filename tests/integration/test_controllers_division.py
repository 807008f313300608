"""Replica division end to end: a federated ReplicaSet lands in each member as the division says.

Real Postgres, three simulated clusters over HTTPS through the official client, the controllers
running in the test's event loop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, WriteOptions
from federation.apis import REPLICA_SET_PREFERENCES
from federation.controllers import ControllerManager
from federation.sim import Simulator
from federation.store import PostgresStorage
from tests.federation_support import all_ready, eventually, fast_settings, member_replicas, register, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator(["a", "b", "c"], kubeconfig=tmp_path / "sim.kubeconfig", start_delay=0.2) as s:
        yield s


@pytest.fixture
async def manager(federation_storage: PostgresStorage, sim: Simulator) -> AsyncIterator[ControllerManager]:
    m = ControllerManager(federation_storage, settings=fast_settings())
    await register(m, sim)
    async with running(m):
        await all_ready(m, sim.names)
        yield m


def replica_set(name: str, replicas: int, annotations: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


async def test_a_replica_set_lands_as_the_division_says(manager: ControllerManager, sim: Simulator) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    prefs = {"clusters": {"a": {"weight": 2}, "b": {"weight": 1}, "c": {"minReplicas": 1, "maxReplicas": 2}}}
    await registry.create(
        REPLICASETS,
        "shop",
        replica_set("web", 10, {REPLICA_SET_PREFERENCES: json.dumps(prefs)}),
        WriteOptions(),
    )

    async def spread() -> dict[str, int] | None:
        found = member_replicas(sim, "shop", "web")
        return found if sum(found.values()) == 10 and len(found) == 3 else None

    found = await eventually(spread, within=30, what="the ReplicaSet in every member")
    assert 1 <= found["c"] <= 2
    assert found["a"] > found["b"]
