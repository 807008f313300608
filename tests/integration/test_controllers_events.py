"""Events: what the federation does and sees, on the federated objects, with members' warnings folded in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.apimachinery import EVENTS, NAMESPACES, REPLICASETS, WriteOptions
from federation.controllers import ControllerManager
from federation.settings import ControllerSettings
from federation.sim import ClusterSpec, Simulator
from tests.federation_support import eventually, fast_settings
from tests.integration.test_controllers_division import replica_set

pytestmark = pytest.mark.anyio


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    specs = [ClusterSpec("a", nodes=1, pods_per_node=2, start_delay=0.2)]
    with Simulator(specs, kubeconfig=tmp_path / "sim.kubeconfig") as s:
        yield s


@pytest.fixture
def controller_settings() -> ControllerSettings:
    return fast_settings(event_retention=3.0)


async def test_scheduling_and_member_warnings_are_events_of_the_federated_object(
    manager: ControllerManager,
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    rs = (await registry.create(REPLICASETS, "shop", replica_set("web", 4), WriteOptions())).object
    uid = rs["metadata"]["uid"]

    async def events() -> dict[str, str]:
        page = await registry.storage.list(EVENTS, "shop")
        return {e["reason"]: e["message"] for e in page.items if e["involvedObject"].get("uid") == uid}

    async def folded() -> dict[str, str] | None:
        seen = await events()
        return seen if {"Scheduled", "FailedScheduling"} <= set(seen) else None

    seen = await eventually(folded, within=20, what="Scheduled and FailedScheduling on the federated RS")
    assert seen["Scheduled"] == "placed on a=4"
    assert seen["FailedScheduling"].startswith("cluster a: ")

    async def expired() -> bool:
        return "Scheduled" not in await events()

    await eventually(expired, within=15, what="the events removed after their retention")
