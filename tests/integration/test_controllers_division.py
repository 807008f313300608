"""Replica division end to end: a federated ReplicaSet lands in each member as the division says.

Real Postgres, three simulated clusters over HTTPS through the official client, the controllers
running in the test's event loop.
"""

from __future__ import annotations

import json

import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, WriteOptions
from federation.apis import (
    CLUSTER_SELECTOR,
    PLACEMENTS,
    REGION_LABEL,
    REPLICA_SET_PREFERENCES,
    placement_name,
)
from federation.controllers import ControllerManager
from federation.scheduling import ClusterState, plan
from federation.sim import Simulator
from tests.federation_support import (
    change,
    eventually,
    member_ready,
    member_replicas,
)

pytestmark = pytest.mark.anyio


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


def expected(prefs: dict, total: int, current: dict[str, int] | None = None) -> dict[str, int]:  # type: ignore[type-arg]
    """What the pure division says for three Ready clusters labelled with their own region."""
    clusters = [ClusterState(name=n, labels={REGION_LABEL: n}, ready=True, cordoned=False) for n in "abc"]
    decided = plan(
        annotations={REPLICA_SET_PREFERENCES: json.dumps(prefs)},
        clusters=clusters,
        total=total,
        current=current or {},
    )
    return {c: n for c, n in decided.replicas.items() if n}


async def settled(sim: Simulator, name: str, want: dict[str, int]) -> dict[str, int]:
    async def check() -> dict[str, int] | None:
        found = {c: n for c, n in member_replicas(sim, "shop", name).items() if n}
        ready = {c: n for c, n in member_ready(sim, "shop", name).items() if n}
        return found if found == want and ready == want else None

    found = await eventually(check, within=30, what=f"{want} in the members")
    assert found is not None
    return found


async def set_replicas_and_prefs(
    manager: ControllerManager,
    name: str,
    replicas: int,
    prefs: dict,  # type: ignore[type-arg]
) -> None:
    def scale(rs: dict) -> None:  # type: ignore[type-arg]
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["annotations"][REPLICA_SET_PREFERENCES] = json.dumps(prefs)

    await change(manager, REPLICASETS, "shop", name, scale)


async def test_a_replica_set_lands_as_the_division_says(manager: ControllerManager, sim: Simulator) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    prefs = {"clusters": {"a": {"weight": 2}, "b": {"weight": 1}, "c": {"minReplicas": 1, "maxReplicas": 2}}}
    assert expected(prefs, 10) == {"a": 5, "b": 3, "c": 2}
    await registry.create(
        REPLICASETS,
        "shop",
        replica_set("web", 10, {REPLICA_SET_PREFERENCES: json.dumps(prefs)}),
        WriteOptions(),
    )
    before = await settled(sim, "web", {"a": 5, "b": 3, "c": 2})

    # Scaling up moves nothing: every cluster keeps what it runs, the new replicas go where the
    # division puts them.
    await set_replicas_and_prefs(manager, "web", 12, prefs)
    want = expected(prefs, 12, before)
    scaled = await settled(sim, "web", want)
    assert all(scaled[c] >= before[c] for c in before), (before, scaled)
    print(f"10 -> 12: {before} -> {scaled}")

    # New weights alone move nothing (no rebalance); a lower maximum for c moves only what c must
    # give up, and nobody else loses a replica.
    reweighted = {"clusters": {"a": {"weight": 1}, "b": {"weight": 3}, "c": {"maxReplicas": 1}}}
    await set_replicas_and_prefs(manager, "web", 12, reweighted)
    want = expected(reweighted, 12, scaled)
    after = await settled(sim, "web", want)
    assert after["c"] == 1
    assert all(after[c] >= scaled[c] for c in ("a", "b")), (scaled, after)
    assert sum(abs(after[c] - scaled[c]) for c in after) == 2  # one replica moved, from c
    print(f"reweighted: {scaled} -> {after}")


async def test_a_cluster_selector_keeps_it_out_of_clusters_that_do_not_match(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    selector = [{"key": REGION_LABEL, "operator": "In", "values": ["a", "b"]}]
    await registry.create(
        REPLICASETS, "shop", replica_set("web", 6, {CLUSTER_SELECTOR: json.dumps(selector)}), WriteOptions()
    )
    await settled(sim, "web", {"a": 3, "b": 3})
    assert "c" not in member_replicas(sim, "shop", "web")

    async def excluded() -> list[dict[str, str]] | None:
        placement = await registry.get(PLACEMENTS, "shop", placement_name("ReplicaSet", "web"))
        return placement["spec"].get("excluded") or None

    assert await eventually(excluded, within=10, what="c excluded in the Placement") == [
        {"name": "c", "reason": "SelectorMismatch"}
    ]
