"""The informer against both storages: its cache, indexes and handlers follow the truth.

Every test runs twice, on :class:`MemoryStorage` (a simulated cluster's store) and on
:class:`PostgresStorage` (the federation's), as ``test_storage_contract.py`` does. Waits have
deadlines; nothing sleeps a fixed time and then asserts.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from federation.apimachinery.errors import Gone, Unavailable
from federation.apimachinery.informers import (
    Handlers,
    Informer,
    Listing,
    StorageSource,
)
from federation.apimachinery.kinds import REPLICASETS
from federation.apimachinery.objects import labels_of, meta, name_of, rv_of
from federation.apimachinery.resources import Obj
from federation.apimachinery.selectors import label_selector_from_object
from federation.apimachinery.storage import Storage, WatchEvent
from tests.conftest import MakeStorage

pytestmark = pytest.mark.anyio


@pytest.fixture
def ns() -> str:
    """A namespace of the test's own (the Postgres database is shared by the module's tests)."""
    return f"ns-{uuid.uuid4().hex[:10]}"


def replicaset(ns: str, name: str, *, app: str = "web", tier: str = "front", replicas: int = 1) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app, "tier": tier}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}}},
    }


class Mirror:
    """What the handlers were told, applied to a dict: equals the cache iff no event was missed."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self.calls: list[tuple[str, str, int, int]] = []
        """(kind, name, old version, new version) of every call."""
        self.problems: list[str] = []

    def key(self, obj: Obj) -> tuple[str, str]:
        return (str(meta(obj).get("namespace", "")), name_of(obj))

    def on_add(self, obj: Obj) -> None:
        if self.key(obj) in self.objects:
            self.problems.append(f"add of a known {self.key(obj)}")
        self.objects[self.key(obj)] = obj
        self.calls.append(("add", name_of(obj), 0, rv_of(obj)))

    def on_update(self, old: Obj, new: Obj) -> None:
        if self.objects.get(self.key(old)) != old:
            self.problems.append(f"update of {self.key(old)} from a state it was not in")
        self.objects[self.key(new)] = new
        self.calls.append(("update", name_of(new), rv_of(old), rv_of(new)))

    def on_delete(self, obj: Obj) -> None:
        if self.objects.pop(self.key(obj), None) is None:
            self.problems.append(f"delete of an unknown {self.key(obj)}")
        self.calls.append(("delete", name_of(obj), rv_of(obj), 0))

    def handlers(self) -> Handlers:
        return Handlers(on_add=self.on_add, on_update=self.on_update, on_delete=self.on_delete)


class Running:
    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Informer:
        self.task = asyncio.create_task(self.informer.run())
        await asyncio.wait_for(self.informer.wait_synced(), 10)
        return self.informer

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def by_key(items: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(str(meta(o).get("namespace", "")), name_of(o)): o for o in items}


async def caught_up(storage: Storage, informer: Informer, ns: str) -> bool:
    return informer.list() == (await storage.list(REPLICASETS, ns)).items


async def churn(storage: Storage, ns: str, rng: random.Random, count: int) -> None:
    """``count`` random creates, updates and deletes of ReplicaSets in ``ns``."""
    names: list[str] = []
    serial = 0
    for _ in range(count):
        op = rng.random()
        if not names or op < 0.4:
            serial += 1
            name = f"rs-{serial}"
            app, tier = rng.choice(["web", "api", "db"]), rng.choice(["front", "back"])
            await storage.create(REPLICASETS, replicaset(ns, name, app=app, tier=tier))
            names.append(name)
        elif op < 0.8:
            name = rng.choice(names)
            current = await storage.get(REPLICASETS, ns, name)
            current["spec"]["replicas"] = rng.randint(0, 9)
            if rng.random() < 0.5:
                meta(current)["labels"]["tier"] = rng.choice(["front", "back", "edge"])
            await storage.update(REPLICASETS, current)
        else:
            name = names.pop(rng.randrange(len(names)))
            await storage.delete(REPLICASETS, ns, name)


async def test_after_a_thousand_random_changes_the_cache_equals_a_fresh_list(
    make_storage: MakeStorage, ns: str
) -> None:
    storage = await make_storage()
    await storage.create(REPLICASETS, replicaset(ns, "early"))
    informer = Informer(StorageSource(storage, REPLICASETS, namespace=ns))
    informer.add_index("app", lambda o: [str(labels_of(o).get("app", ""))])
    mirror = Mirror()
    informer.add_handlers(mirror.handlers())
    async with Running(informer):
        await churn(storage, ns, random.Random(8), 1000)
        await until(lambda: caught_up(storage, informer, ns))
        fresh = (await storage.list(REPLICASETS, ns)).items
        assert informer.list() == fresh
        assert mirror.objects == by_key(fresh)
        assert mirror.problems == []
        assert informer.relists == 1
        for app in ("web", "api", "db"):
            want = [o for o in fresh if labels_of(o)["app"] == app]
            assert informer.by_index("app", app) == want
            assert informer.by_label("app", app) == want
        for tier in ("front", "back", "edge"):
            assert informer.by_label("tier", tier) == [o for o in fresh if labels_of(o)["tier"] == tier]
        assert informer.list(ns) == fresh
        assert informer.list("elsewhere") == []
        assert informer.by_index("app", "absent") == []


async def test_it_recovers_from_410_by_relisting_and_tells_only_the_differences(
    make_storage: MakeStorage, ns: str
) -> None:
    storage = await make_storage(window=20)
    for i in range(5):
        await storage.create(REPLICASETS, replicaset(ns, f"rs-{i}"))
    informer = Informer(StorageSource(storage, REPLICASETS, namespace=ns))
    mirror = Mirror()
    informer.add_handlers(mirror.handlers())
    async with Running(informer):
        await until(lambda: caught_up(storage, informer, ns))
    # Stopped, it falls out of the watch window: 60 changes, where 20 are kept.
    await storage.delete(REPLICASETS, ns, "rs-0")
    changed = await storage.get(REPLICASETS, ns, "rs-1")
    changed["spec"]["replicas"] = 7
    await storage.update(REPLICASETS, changed)
    for i in range(58):
        await storage.create(REPLICASETS, replicaset(ns, f"new-{i}", app="api"))
    assert informer.get(ns, "rs-0") is not None

    async def expired() -> bool:
        """Whether the storage has let the informer's version go (Postgres: once its feed has read
        the 60 changes, which may lag under load)."""
        stream = storage.watch(REPLICASETS, ns, since=informer.resource_version)
        try:
            await asyncio.wait_for(anext(stream), 1.0)
        except Gone:
            return True
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        return False

    await until(expired)
    mirror.calls.clear()
    async with Running(informer):
        await until(lambda: caught_up(storage, informer, ns))
        assert informer.relists == 2
    assert mirror.objects == by_key((await storage.list(REPLICASETS, ns)).items)
    assert mirror.problems == []
    told = sorted((kind, name) for kind, name, _, _ in mirror.calls)
    assert told == sorted(
        [("delete", "rs-0"), ("update", "rs-1")] + [("add", f"new-{i}") for i in range(58)]
    ), "unchanged rs-2..rs-4 are not reported"
    assert informer.get(ns, "rs-0") is None
    assert (
        informer.by_label("app", "api")
        == (await storage.list(REPLICASETS, ns, label_equals={"app": "api"})).items
    )


async def test_changing_what_it_hands_out_does_not_change_the_cache(
    make_storage: MakeStorage, ns: str
) -> None:
    storage = await make_storage()
    await storage.create(REPLICASETS, replicaset(ns, "web"))
    informer = Informer(StorageSource(storage, REPLICASETS, namespace=ns))
    handed: list[Obj] = []

    def grab(*objs: Obj) -> None:
        for obj in objs:
            handed.append(obj)
            obj["spec"]["replicas"] = 99  # a careless handler
            meta(obj)["labels"]["app"] = "changed"

    informer.add_handlers(Handlers(on_add=grab, on_update=grab))
    async with Running(informer):
        before = (await storage.list(REPLICASETS, ns)).items
        for obj in [informer.get(ns, "web"), *informer.list(), *informer.by_label("app", "web")]:
            assert obj is not None
            obj["spec"]["replicas"] = 42
            meta(obj)["labels"].clear()
        assert informer.list() == before
        assert informer.by_label("app", "web") == before
        assert informer.by_label("app", "changed") == []
        current = await storage.get(REPLICASETS, ns, "web")
        current["spec"]["replicas"] = 2
        await storage.update(REPLICASETS, current)
        await until(lambda: caught_up(storage, informer, ns))
        assert informer.list() == (await storage.list(REPLICASETS, ns)).items
        assert len(handed) >= 3


async def test_a_read_only_handler_is_handed_the_cached_objects_themselves(
    make_storage: MakeStorage, ns: str
) -> None:
    """The controllers' handlers only read: they are spared a copy per object per event, and
    a handler that copies by default is still handed its own."""
    storage = await make_storage()
    informer = Informer(StorageSource(storage, REPLICASETS, namespace=ns))
    shared: list[Obj] = []
    own: list[Obj] = []
    informer.add_handlers(
        Handlers(on_add=shared.append, on_update=lambda _, new: shared.append(new), read_only=True)
    )
    informer.add_handlers(Handlers(on_add=own.append, on_update=lambda _, new: own.append(new)))
    async with Running(informer):
        created = await storage.create(REPLICASETS, replicaset(ns, "web"))
        created["spec"]["replicas"] = 3
        await storage.update(REPLICASETS, created)
        await until(lambda: caught_up(storage, informer, ns))
        assert len(shared) == len(own) == 2
        assert shared[-1] is informer.peek(ns, "web")
        assert own[-1] == shared[-1]
        assert own[-1] is not shared[-1]
        assert shared[0]["spec"]["replicas"] != 3  # the object an update replaced is left as it was


async def test_handlers_hear_add_update_delete_and_resync(make_storage: MakeStorage, ns: str) -> None:
    storage = await make_storage()
    informer = Informer(StorageSource(storage, REPLICASETS, namespace=ns), resync_period=0.2)
    mirror = Mirror()
    informer.add_handlers(mirror.handlers())
    async with Running(informer):
        created = await storage.create(REPLICASETS, replicaset(ns, "web"))
        updated = await storage.get(REPLICASETS, ns, "web")
        updated["spec"]["replicas"] = 3
        updated = await storage.update(REPLICASETS, updated)
        gone = await storage.delete(REPLICASETS, ns, "web")
        await until(lambda: _has(mirror, "delete"))
        assert mirror.calls[:3] == [
            ("add", "web", 0, rv_of(created)),
            ("update", "web", rv_of(created), rv_of(updated)),
            ("delete", "web", rv_of(gone), 0),
        ]
        kept = await storage.create(REPLICASETS, replicaset(ns, "kept"))
        await until(lambda: _has(mirror, "update", "kept"))
        resynced = [c for c in mirror.calls if c[0] == "update" and c[1] == "kept"]
        assert resynced[0] == ("update", "kept", rv_of(kept), rv_of(kept)), "a resync: same object"
        assert mirror.problems == []


async def _has(mirror: Mirror, kind: str, name: str | None = None) -> bool:
    return any(c[0] == kind and (name is None or c[1] == name) for c in mirror.calls)


async def test_a_selector_narrows_the_cache_and_an_object_leaving_it_is_deleted(
    make_storage: MakeStorage, ns: str
) -> None:
    storage = await make_storage()
    await storage.create(REPLICASETS, replicaset(ns, "web", app="web"))
    await storage.create(REPLICASETS, replicaset(ns, "api", app="api"))
    selector = label_selector_from_object({"matchLabels": {"app": "web"}})
    informer = Informer(StorageSource(storage, REPLICASETS, namespace=ns, label_selector=selector))
    mirror = Mirror()
    informer.add_handlers(mirror.handlers())
    async with Running(informer):
        assert informer.keys() == [(ns, "web")]
        moved = await storage.get(REPLICASETS, ns, "web")
        meta(moved)["labels"]["app"] = "old-web"
        await storage.update(REPLICASETS, moved)
        joined = await storage.get(REPLICASETS, ns, "api")
        meta(joined)["labels"]["app"] = "web"
        await storage.update(REPLICASETS, joined)
        await until(lambda: _keys_are(informer, [(ns, "api")]))
        assert [c[:2] for c in mirror.calls] == [("add", "web"), ("delete", "web"), ("add", "api")]


async def _keys_are(informer: Informer, keys: list[tuple[str, str]]) -> bool:
    return informer.keys() == keys


class FailingSource:
    """A real StorageSource that answers 503 while ``down`` (its database away, say)."""

    def __init__(self, inner: StorageSource) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise Unavailable.make("the database is unreachable")

    async def list(self) -> Listing:
        self._check()
        return await self.inner.list()

    def watch(self, *, since: int) -> AsyncIterator[WatchEvent]:
        return self._watch(since)

    async def _watch(self, since: int) -> AsyncIterator[WatchEvent]:
        self._check()
        async for event in self.inner.watch(since=since):
            self._check()
            yield event

    def describe(self) -> str:
        return "failing " + self.inner.describe()


async def test_after_other_errors_it_backs_off_and_relists(make_storage: MakeStorage, ns: str) -> None:
    storage = await make_storage()
    await storage.create(REPLICASETS, replicaset(ns, "web"))
    source = FailingSource(StorageSource(storage, REPLICASETS, namespace=ns))
    informer = Informer(source)
    async with Running(informer):
        source.down = True
        await storage.create(REPLICASETS, replicaset(ns, "during"))
        await until(lambda: _refused(source, 3))
        source.down = False
        await storage.create(REPLICASETS, replicaset(ns, "after"))
        await until(lambda: caught_up(storage, informer, ns))
        assert informer.relists >= 2
        names = [name for _, name in informer.keys()]  # noqa: SIM118 (a list, not a dict view)
        assert names == ["after", "during", "web"]


async def _refused(source: FailingSource, at_least: int) -> bool:
    return source.refused >= at_least


async def test_an_index_added_late_files_what_is_cached(make_storage: MakeStorage, ns: str) -> None:
    storage = await make_storage()
    for i, tier in enumerate(["front", "back", "front"]):
        await storage.create(REPLICASETS, replicaset(ns, f"rs-{i}", tier=tier))
    informer = Informer(StorageSource(storage, REPLICASETS, namespace=ns))
    async with Running(informer):
        informer.add_index("tier", lambda o: [labels_of(o)["tier"]])
        assert [name_of(o) for o in informer.by_index("tier", "front")] == ["rs-0", "rs-2"]
        assert informer.index_values("tier") == ["back", "front"]
        with pytest.raises(ValueError, match="already has an index"):
            informer.add_index("tier", lambda o: [])
        with pytest.raises(KeyError):
            informer.by_index("nope", "x")
