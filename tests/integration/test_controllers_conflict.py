"""An object the federation did not make is never overwritten, unless the federated object asks to
adopt it: the conflict shows in the Placement's status and in a Warning Event.

Real Postgres, three simulated clusters over HTTPS through the official client, the controllers
running in the test's event loop.
"""

from __future__ import annotations

import pytest

from federation.apimachinery import NAMESPACES, SECRETS, WriteOptions
from federation.apis import ADOPT_ANNOTATION, MANAGED_BY_LABEL, PLACEMENTS, placement_name
from federation.controllers import ControllerManager
from federation.sim import Simulator
from tests.federation_support import (
    b64,
    change,
    events_about,
    eventually,
    member_get,
)
from tests.integration.test_controllers_secrets import secret

pytestmark = pytest.mark.anyio


async def test_an_object_made_by_hand_is_not_overwritten_until_adopted(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())

    async def namespace_everywhere() -> bool:
        return all(member_get(sim, c, NAMESPACES, "", "shop") is not None for c in sim.names)

    await eventually(namespace_everywhere, within=20, what="namespace shop in every member")
    sim.call(sim.cluster("b").registry.create(SECRETS, "shop", secret("db", "made by hand"), WriteOptions()))

    await registry.create(SECRETS, "shop", secret("db", "federated"), WriteOptions())

    async def in_a_and_c() -> bool:
        return all(
            (member_get(sim, c, SECRETS, "shop", "db") or {}).get("data") == {"password": b64("federated")}
            for c in ("a", "c")
        )

    await eventually(in_a_and_c, within=20, what="the federated Secret in a and c")

    async def b_state() -> str | None:
        placement = await registry.get(PLACEMENTS, "shop", placement_name("Secret", "db"))
        states = {e["name"]: e.get("state") for e in (placement.get("status") or {}).get("clusters") or []}
        return states.get("b") if states.get("b") == "Conflict" else None

    await eventually(b_state, within=10, what="state Conflict for b in the Placement's status")
    warnings = await eventually(
        lambda: events_about(manager, "shop", "db", reason="Conflict"), within=10, what="a Conflict Event"
    )
    assert warnings[0]["type"] == "Warning"
    assert "cluster b" in warnings[0]["message"]
    hand_made = member_get(sim, "b", SECRETS, "shop", "db")
    assert hand_made is not None
    assert hand_made["data"] == {"password": b64("made by hand")}
    assert MANAGED_BY_LABEL not in (hand_made["metadata"].get("labels") or {})

    def adopt(obj: dict) -> None:  # type: ignore[type-arg]
        obj["metadata"].setdefault("annotations", {})[ADOPT_ANNOTATION] = "true"

    await change(manager, SECRETS, "shop", "db", adopt)

    async def adopted() -> bool:
        copy = member_get(sim, "b", SECRETS, "shop", "db") or {}
        return (
            copy.get("data") == {"password": b64("federated")}
            and (copy.get("metadata") or {}).get("labels", {}).get(MANAGED_BY_LABEL) == "federation"
        )

    await eventually(adopted, within=20, what="b's Secret taken over by the federation")

    async def b_ready() -> bool:
        placement = await registry.get(PLACEMENTS, "shop", placement_name("Secret", "db"))
        states = {e["name"]: e.get("state") for e in (placement.get("status") or {}).get("clusters") or []}
        return states == {"a": "Ready", "b": "Ready", "c": "Ready"}

    await eventually(b_ready, within=10, what="every cluster Ready in the Placement's status")
