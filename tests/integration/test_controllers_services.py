"""Federated Services: propagated like the other kinds, or only where their workloads run."""

from __future__ import annotations

import json

import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, SERVICES, Obj, WriteOptions
from federation.apis import FOLLOW_WORKLOADS_ANNOTATION, REPLICA_SET_PREFERENCES
from federation.controllers import ControllerManager
from federation.sim import Simulator
from tests.federation_support import change, eventually, member_get
from tests.integration.test_controllers_division import replica_set

pytestmark = pytest.mark.anyio


def service(name: str, *, follow: bool = False) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "annotations": {FOLLOW_WORKLOADS_ANNOTATION: "true"} if follow else {},
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }


async def test_a_load_balancer_service_reaches_every_member_and_gets_regional_addresses(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    await registry.create(SERVICES, "shop", service("web"), WriteOptions())

    async def addressed() -> dict[str, Obj] | None:
        copies = {c: member_get(sim, c, SERVICES, "shop", "web") for c in sim.names}
        if all(c and (c.get("status") or {}).get("loadBalancer", {}).get("ingress") for c in copies.values()):
            return copies  # type: ignore[return-value]
        return None

    copies = await eventually(addressed, what="the Service with a regional address in every member")
    for copy in copies.values():
        assert copy["spec"]["clusterIP"]  # the member's own
        assert copy["spec"]["ports"][0]["port"] == 80
    assert len({c["spec"]["clusterIP"] + str(c["metadata"]["uid"]) for c in copies.values()}) == 3


async def test_a_service_that_follows_its_workloads_goes_only_where_they_run(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    prefs = {"clusters": {"a": {"weight": 1}, "b": {"weight": 1}}}
    await registry.create(
        REPLICASETS,
        "shop",
        replica_set("web", 2, {REPLICA_SET_PREFERENCES: json.dumps(prefs)}),
        WriteOptions(),
    )
    await registry.create(SERVICES, "shop", service("web", follow=True), WriteOptions())

    async def placed() -> set[str] | None:
        found = {c for c in sim.names if member_get(sim, c, SERVICES, "shop", "web") is not None}
        return found if found == {"a", "b"} else None

    await eventually(placed, what="the Service in a and b only")

    prefs = {"clusters": {"c": {"weight": 1}}, "rebalance": True}

    def to_c(rs: Obj) -> None:
        rs["metadata"]["annotations"] = {REPLICA_SET_PREFERENCES: json.dumps(prefs)}

    await change(manager, REPLICASETS, "shop", "web", to_c)

    async def moved() -> set[str] | None:
        found = {c for c in sim.names if member_get(sim, c, SERVICES, "shop", "web") is not None}
        return found if found == {"c"} else None

    await eventually(moved, what="the Service following its ReplicaSet to c")
