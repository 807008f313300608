"""Deleting a federated Namespace removes its copies, and everything in them, from every member.

Real Postgres, three simulated clusters over HTTPS through the official client, the controllers
running in the test's event loop.
"""

from __future__ import annotations

import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, SECRETS, NotFound, WriteOptions
from federation.controllers import ControllerManager
from federation.sim import Simulator
from tests.federation_support import (
    eventually,
    member_get,
    member_ready,
)
from tests.integration.test_controllers_division import replica_set
from tests.integration.test_controllers_secrets import secret

pytestmark = pytest.mark.anyio


async def test_deleting_a_federated_namespace_removes_it_from_every_member(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    await registry.create(SECRETS, "shop", secret("db", "one"), WriteOptions())
    await registry.create(REPLICASETS, "shop", replica_set("web", 3), WriteOptions())

    async def everywhere() -> bool:
        return member_ready(sim, "shop", "web") == {"a": 1, "b": 1, "c": 1} and all(
            member_get(sim, c, SECRETS, "shop", "db") is not None for c in sim.names
        )

    await eventually(everywhere, within=30, what="the namespace, its Secret and ReplicaSet in every member")

    await registry.delete(NAMESPACES, "", "shop")

    async def gone_from_members() -> bool:
        return all(member_get(sim, c, NAMESPACES, "", "shop") is None for c in sim.names)

    await eventually(gone_from_members, within=30, what="namespace shop gone from every member")
    for cluster in sim.names:
        assert member_get(sim, cluster, SECRETS, "shop", "db") is None
        assert member_get(sim, cluster, REPLICASETS, "shop", "web") is None

    async def gone_from_federation() -> bool:
        try:
            await registry.get(NAMESPACES, "", "shop")
        except NotFound:
            return True
        return False

    await eventually(gone_from_federation, within=10, what="namespace shop gone from the federation")
