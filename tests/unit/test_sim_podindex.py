"""The storage's secondary indexes and the simulator's pod index over them, straight over a
MemoryStorage: groups follow every write at once, copies stay the caller's, the stored objects a
reader holds are never changed under it, and a failing index function changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from federation.apimachinery.kinds import SECRETS
from federation.apimachinery.memory import MemoryStorage
from federation.apimachinery.objects import meta
from federation.apimachinery.resources import Obj
from federation.sim.nodes import NODES
from federation.sim.podindex import PodIndex
from federation.sim.pods import PODS


def run(coro: Awaitable[None]) -> None:
    async def main() -> None:
        await asyncio.wait_for(coro, timeout=10)

    asyncio.run(main())


def secret(name: str, team: str, ns: str = "a") -> Obj:
    return {"metadata": {"name": name, "namespace": ns, "labels": {"team": team}}, "data": {}}


def by_team(obj: Obj) -> list[str]:
    team = meta(obj).get("labels", {}).get("team")
    return [team] if team else []


def names(objs: list[Obj]) -> list[str]:
    return [str(meta(o)["name"]) for o in objs]


def test_an_index_follows_creates_updates_and_deletes() -> None:
    async def scenario() -> None:
        storage = MemoryStorage()
        await storage.create(SECRETS, secret("s1", "red"))
        storage.add_index(SECRETS, "team", by_team)  # files what is already stored
        await storage.create(SECRETS, secret("s3", "red"))
        await storage.create(SECRETS, secret("s2", "blue", ns="b"))
        assert names(storage.indexed(SECRETS, "team", "red")) == ["s1", "s3"]
        assert storage.indexed_count(SECRETS, "team", "blue") == 1
        assert sorted(map(str, storage.index_values(SECRETS, "team"))) == ["blue", "red"]

        moved = await storage.get(SECRETS, "a", "s1")
        meta(moved)["labels"]["team"] = "blue"
        await storage.update(SECRETS, moved)
        assert names(storage.indexed(SECRETS, "team", "red")) == ["s3"]
        assert names(storage.indexed(SECRETS, "team", "blue")) == ["s1", "s2"]  # by (namespace, name)

        await storage.delete(SECRETS, "a", "s3")
        assert storage.indexed(SECRETS, "team", "red") == []
        assert storage.indexed_count(SECRETS, "team", "red") == 0
        assert "red" not in storage.index_values(SECRETS, "team")

    run(scenario())


def test_copies_are_the_callers_and_readonly_objects_are_replaced_not_changed() -> None:
    async def scenario() -> None:
        storage = MemoryStorage()
        storage.add_index(SECRETS, "team", by_team)
        await storage.create(SECRETS, secret("s1", "red"))
        copy = storage.indexed(SECRETS, "team", "red")[0]
        copy["data"]["x"] = "changed"
        assert (await storage.get(SECRETS, "a", "s1"))["data"] == {}

        (held,) = storage.indexed_readonly(SECRETS, "team", "red")
        assert storage.indexed_readonly(SECRETS, "team", "red")[0] is held
        assert storage.list_readonly(SECRETS, "a") == [held]
        version = meta(held)["resourceVersion"]
        newer = await storage.get(SECRETS, "a", "s1")
        newer["data"] = {"k": "dg=="}
        await storage.update(SECRETS, newer)
        assert held["data"] == {}
        assert meta(held)["resourceVersion"] == version
        await storage.delete(SECRETS, "a", "s1")
        assert meta(held)["resourceVersion"] == version

    run(scenario())


def test_a_failing_index_function_fails_the_write_and_changes_nothing() -> None:
    async def scenario() -> None:
        storage = MemoryStorage()

        def picky(obj: Obj) -> list[str]:
            if meta(obj)["name"] == "bad":
                raise ValueError("no")
            return ["all"]

        storage.add_index(SECRETS, "picky", picky)
        version = await storage.current_version()
        with pytest.raises(ValueError, match="no"):
            await storage.create(SECRETS, secret("bad", "red"))
        assert await storage.current_version() == version
        assert (await storage.list(SECRETS, None)).items == []
        assert storage.index_values(SECRETS, "picky") == []

    run(scenario())


def test_index_names_are_checked() -> None:
    storage = MemoryStorage()
    storage.add_index(SECRETS, "team", by_team)
    with pytest.raises(ValueError, match="already have an index"):
        storage.add_index(SECRETS, "team", by_team)
    with pytest.raises(KeyError, match="no index named"):
        storage.indexed(SECRETS, "colour", "red")


def pod(name: str, *, owner: tuple[str, str] | None = None, **fields: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Pending"},
    }
    if owner is not None:
        obj["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner[0],
                "uid": owner[1],
                "controller": True,
            }
        ]
    for path, value in fields.items():
        section, key = path.split("__")
        obj.setdefault(section, {})[key] = value
    return obj


def test_pods_are_found_by_replicaset_name_whatever_the_owner_uid() -> None:
    async def scenario() -> None:
        storage = MemoryStorage()
        index = PodIndex(storage)
        await storage.create(PODS, pod("web-1", owner=("web", "old")))
        await storage.create(PODS, pod("web-2", owner=("web", "new")))
        await storage.create(PODS, pod("api-1", owner=("api", "x")))
        await storage.create(PODS, pod("loose"))
        assert names(index.of_replicaset_readonly("shop", "web")) == ["web-1", "web-2"]
        assert names(index.of_replicaset_readonly("shop", "api")) == ["api-1"]
        assert index.of_replicaset_readonly("other", "web") == []

    run(scenario())


def test_a_pod_moves_through_the_scheduling_groups_as_it_is_written() -> None:
    async def scenario() -> None:
        storage = MemoryStorage()
        index = PodIndex(storage)
        await storage.create(NODES, {"metadata": {"name": "n1"}})
        await storage.create(PODS, pod("p"))
        assert names(index.waiting_readonly()) == ["p"]
        assert names(index.nodes_readonly()) == ["n1"]

        async def write(**fields: Any) -> None:
            current = await storage.get(PODS, "shop", "p")
            for path, value in fields.items():
                section, key = path.split("__")
                current[section][key] = value
            await storage.update(PODS, current)

        await write(spec__nodeName="n1")
        assert index.waiting_readonly() == []
        assert names(index.starting_readonly()) == ["p"]
        assert (index.bound_nodes(), index.slots_taken("n1")) == (["n1"], 1)
        await write(status__phase="Running", status__podIP="10.0.0.2")
        assert index.starting_readonly() == []
        assert index.ip_in_use("n1", "10.0.0.2")
        assert not index.ip_in_use("n1", "10.0.0.3")
        await write(status__phase="Succeeded")
        assert index.slots_taken("n1") == 0
        assert not index.ip_in_use("n1", "10.0.0.2")
        assert names(index.bound_to_readonly("n1")) == ["p"]  # the collector still finds it
        await storage.delete(PODS, "shop", "p")
        assert index.bound_nodes() == []
        assert index.occupying_readonly("n1") == []

        await storage.create(PODS, pod("gone", metadata__deletionTimestamp="2025-01-01T00:00:00Z"))
        assert index.waiting_readonly() == []  # being deleted: not scheduled
        await storage.create(PODS, pod("done", status__phase="Failed"))
        assert index.waiting_readonly() == []

    run(scenario())
