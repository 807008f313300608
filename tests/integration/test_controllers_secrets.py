"""Federated Secrets end to end: an update reaches every member, a copy changed or removed by hand in
a member is put back (counted and told in an Event), and a federated delete removes every copy first.

Real Postgres, three simulated clusters over HTTPS through the official client, the controllers
running in the test's event loop. Hand edits go through the member's own API machinery.
"""

from __future__ import annotations

import pytest

from federation.apimachinery import NAMESPACES, SECRETS, NotFound, WriteOptions
from federation.apis import PROPAGATION_FINALIZER
from federation.controllers import ControllerManager
from federation.sim import Simulator
from tests.federation_support import (
    b64,
    change,
    events_about,
    eventually,
    member_get,
    sample,
)

pytestmark = pytest.mark.anyio

DRIFT = "federation_drift_corrections_total"


def secret(name: str, password: str) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "shop"},
        "type": "Opaque",
        "data": {"password": b64(password)},
    }


def member_passwords(sim: Simulator, name: str) -> dict[str, str | None]:
    """The password each member holds (None: no copy)."""
    found: dict[str, str | None] = {}
    for cluster in sim.names:
        copy = member_get(sim, cluster, SECRETS, "shop", name)
        found[cluster] = None if copy is None else (copy.get("data") or {}).get("password")
    return found


async def everywhere(sim: Simulator, name: str, password: str) -> None:
    async def check() -> bool:
        return set(member_passwords(sim, name).values()) == {b64(password)}

    await eventually(check, within=20, what=f"secret {name} with {password!r} in every member")


async def test_an_update_of_a_federated_secret_reaches_every_member(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    await registry.create(SECRETS, "shop", secret("db", "one"), WriteOptions())
    await everywhere(sim, "db", "one")

    await change(manager, SECRETS, "shop", "db", lambda s: s.update(data={"password": b64("two")}))
    await everywhere(sim, "db", "two")


async def test_a_copy_edited_or_deleted_by_hand_is_put_back(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    await registry.create(SECRETS, "shop", secret("db", "one"), WriteOptions())
    await everywhere(sim, "db", "one")
    before_b, before_c = sample(DRIFT, cluster="b", kind="Secret"), sample(DRIFT, cluster="c", kind="Secret")

    member_b = sim.cluster("b").registry
    copy = sim.call(member_b.get(SECRETS, "shop", "db"))
    copy["data"] = {"password": b64("edited by hand")}
    sim.call(member_b.update(SECRETS, "shop", "db", copy, WriteOptions()))
    sim.call(sim.cluster("c").registry.delete(SECRETS, "shop", "db"))

    await everywhere(sim, "db", "one")

    async def counted() -> bool:
        return (
            sample(DRIFT, cluster="b", kind="Secret") == before_b + 1
            and sample(DRIFT, cluster="c", kind="Secret") == before_c + 1
        )

    await eventually(counted, within=10, what="one drift correction each in b and c")

    async def told() -> list[str]:
        events = await events_about(manager, "shop", "db", reason="DriftCorrected")
        return sorted(str(e["message"]) for e in events) if len(events) == 2 else []

    messages = await eventually(told, within=10, what="two DriftCorrected Events on the Secret")
    assert "cluster b was edited" in messages[0]
    assert "cluster c was deleted" in messages[1]
    assert member_passwords(sim, "db")["a"] == b64("one")


async def test_a_federated_delete_removes_every_copy_then_the_secret(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    await registry.create(SECRETS, "shop", secret("db", "one"), WriteOptions())
    await everywhere(sim, "db", "one")

    async def finalizer_on() -> bool:
        obj = await registry.get(SECRETS, "shop", "db")
        return PROPAGATION_FINALIZER in (obj["metadata"].get("finalizers") or [])

    await eventually(finalizer_on, within=10, what="the propagation finalizer on the Secret")
    await registry.delete(SECRETS, "shop", "db")

    async def gone() -> bool:
        try:
            obj = await registry.get(SECRETS, "shop", "db")
        except NotFound:
            return True
        # While it is held, it is held because copies remain somewhere.
        assert obj["metadata"].get("deletionTimestamp")
        return False

    await eventually(gone, within=20, what="the federated Secret gone")
    assert member_passwords(sim, "db") == {"a": None, "b": None, "c": None}
