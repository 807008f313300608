"""The Storage contract, run against both implementations.

Every test in the first part runs twice: on :class:`MemoryStorage` (the simulated clusters' store)
and on :class:`PostgresStorage` (the federation's), so both keep the guarantees written in
``federation/apimachinery/storage.py``. The second part checks what only Postgres promises: several
storages (API server processes) on one database, secrets encrypted at rest (``pg_dump``), resumable
watches after a restart, compaction.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import psycopg
import pytest

from federation.apimachinery.errors import ApiError
from federation.apimachinery.kinds import LAST_APPLIED, SECRETS
from federation.apimachinery.objects import labels_of, rv_of
from federation.apimachinery.resources import Obj, ResourceType
from federation.apimachinery.storage import Storage, WatchEvent
from federation.store import PostgresStorage, Sealer
from tests.conftest import MakeStorage

pytestmark = pytest.mark.anyio

REPLICASETS = ResourceType(
    group="apps", version="v1", kind="ReplicaSet", plural="replicasets", singular="replicaset",
    namespaced=True, schema_ref="io.k8s.api.apps.v1.ReplicaSet",
)  # fmt: skip
CLUSTERS = ResourceType(
    group="federation.io", version="v1alpha1", kind="Cluster", plural="clusters", singular="cluster",
    namespaced=False, schema_ref="io.federation.v1alpha1.Cluster",
)  # fmt: skip


@pytest.fixture
async def storage(make_storage: MakeStorage) -> Storage:
    return await make_storage()


@pytest.fixture
def ns() -> str:
    """A namespace of the test's own (the Postgres database is shared by the module's tests)."""
    return f"ns-{uuid.uuid4().hex[:10]}"


def obj(rt: ResourceType, namespace: str, name: str, **fields: Any) -> Obj:
    labels = fields.pop("labels", None)
    metadata: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4())}
    if rt.namespaced:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": metadata, **fields}


def rs(namespace: str, name: str, replicas: int = 1, **fields: Any) -> Obj:
    return obj(REPLICASETS, namespace, name, spec={"replicas": replicas}, **fields)


def without_rv(o: Obj) -> Obj:
    return {**o, "metadata": {k: v for k, v in o["metadata"].items() if k != "resourceVersion"}}


async def status_of(call: Awaitable[object]) -> str:
    try:
        await call
    except ApiError as err:
        return err.reason
    return "ok"


@contextlib.asynccontextmanager
async def watching(
    storage: Storage, rt: ResourceType, namespace: str | None, *, since: int | None, **kw: Any
) -> AsyncIterator[AsyncGenerator[WatchEvent, None]]:
    events = cast(AsyncGenerator[WatchEvent, None], storage.watch(rt, namespace, since=since, **kw))
    async with contextlib.aclosing(events):
        yield events


async def take(
    events: AsyncGenerator[WatchEvent, None], n: int, *, seconds: float = 10.0
) -> list[WatchEvent]:
    """The next ``n`` events, then a check that no further event follows (exactly once)."""
    got: list[WatchEvent] = []

    async def run() -> None:
        async for event in events:
            got.append(event)
            if len(got) == n:
                return

    await asyncio.wait_for(run(), seconds)
    try:
        extra = await asyncio.wait_for(anext(events), 0.4)
    except TimeoutError:
        return got
    pytest.fail(f"unexpected extra event {extra}")


async def gone_within(storage: Storage, *, since: int, seconds: float) -> tuple[int, str] | None:
    """The error a watch from ``since`` gets once the storage's window has moved past it (Postgres's
    window moves when its feed has read the changes, a moment after they were written)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with watching(storage, REPLICASETS, None, since=since) as events:
                await asyncio.wait_for(anext(events), 0.05)
        except ApiError as err:
            return (err.code, err.reason)
        except TimeoutError:
            pass
        await asyncio.sleep(0.05)
    return None


# -- contract: both storages ------------------------------------------------------------------------


async def test_create_get_round_trip(storage: Storage, ns: str) -> None:
    given = rs(ns, "web", labels={"app": "web"})
    created = await storage.create(REPLICASETS, given)
    assert "resourceVersion" not in given["metadata"], "the caller's object is not changed"
    assert rv_of(created) > 0
    assert without_rv(created) == given
    fetched = await storage.get(REPLICASETS, ns, "web")
    assert fetched == created
    fetched["spec"]["replicas"] = 99
    given["spec"]["replicas"] = 98
    assert (await storage.get(REPLICASETS, ns, "web"))["spec"]["replicas"] == 1, "nothing kept by reference"


async def test_versions_increase(storage: Storage, ns: str) -> None:
    before = await storage.current_version()
    a = await storage.create(REPLICASETS, rs(ns, "a"))
    b = await storage.create(REPLICASETS, rs(ns, "b"))
    assert before < rv_of(a) < rv_of(b) == await storage.current_version()
    assert isinstance(a["metadata"]["resourceVersion"], str)


async def test_create_existing_is_already_exists_and_changes_nothing(storage: Storage, ns: str) -> None:
    first = await storage.create(REPLICASETS, rs(ns, "web", replicas=1))
    version = await storage.current_version()
    with pytest.raises(ApiError) as err:
        await storage.create(REPLICASETS, rs(ns, "web", replicas=5))
    assert (err.value.code, err.value.reason) == (409, "AlreadyExists")
    assert await storage.get(REPLICASETS, ns, "web") == first
    assert await storage.current_version() == version


async def test_missing_objects_are_not_found(storage: Storage, ns: str) -> None:
    for call in (
        storage.get(REPLICASETS, ns, "nope"),
        storage.update(REPLICASETS, rs(ns, "nope")),
        storage.delete(REPLICASETS, ns, "nope"),
    ):
        with pytest.raises(ApiError) as err:
            await call
        assert (err.value.code, err.value.reason) == (404, "NotFound")


async def test_update_with_precondition(storage: Storage, ns: str) -> None:
    created = await storage.create(REPLICASETS, rs(ns, "web", replicas=1))
    updated = await storage.update(REPLICASETS, rs(ns, "web", replicas=2), precondition_rv=rv_of(created))
    assert rv_of(updated) > rv_of(created)
    assert await storage.get(REPLICASETS, ns, "web") == updated
    version = await storage.current_version()
    with pytest.raises(ApiError) as err:
        await storage.update(REPLICASETS, rs(ns, "web", replicas=3), precondition_rv=rv_of(created))
    assert (err.value.code, err.value.reason) == (409, "Conflict")
    assert await storage.get(REPLICASETS, ns, "web") == updated
    assert await storage.current_version() == version
    unconditional = await storage.update(REPLICASETS, rs(ns, "web", replicas=4))
    assert unconditional["spec"]["replicas"] == 4


async def test_delete(storage: Storage, ns: str) -> None:
    created = await storage.create(REPLICASETS, rs(ns, "web"))
    with pytest.raises(ApiError) as err:
        await storage.delete(REPLICASETS, ns, "web", precondition_rv=rv_of(created) - 1)
    assert err.value.reason == "Conflict"
    deleted = await storage.delete(REPLICASETS, ns, "web", precondition_rv=rv_of(created))
    assert rv_of(deleted) > rv_of(created)
    assert without_rv(deleted) == without_rv(created)
    assert await status_of(storage.get(REPLICASETS, ns, "web")) == "NotFound"
    assert await status_of(storage.delete(REPLICASETS, ns, "web")) == "NotFound"
    recreated = await storage.create(REPLICASETS, rs(ns, "web"))
    assert rv_of(recreated) > rv_of(deleted)


async def test_concurrent_updates_with_one_precondition_exactly_one_wins(storage: Storage, ns: str) -> None:
    created = await storage.create(REPLICASETS, rs(ns, "web"))
    outcomes = await asyncio.gather(
        *(
            status_of(storage.update(REPLICASETS, rs(ns, "web", replicas=n), precondition_rv=rv_of(created)))
            for n in range(2, 12)
        )
    )
    assert sorted(outcomes) == ["Conflict"] * 9 + ["ok"]
    outcomes = await asyncio.gather(
        *(status_of(storage.create(REPLICASETS, rs(ns, "new"))) for _ in range(8))
    )
    assert sorted(outcomes) == ["AlreadyExists"] * 7 + ["ok"]


async def test_count_and_cluster_scoped(storage: Storage, ns: str) -> None:
    for name in ("a", "b", "c"):
        await storage.create(REPLICASETS, rs(ns, name))
    assert await storage.count(REPLICASETS, ns) == 3
    assert await storage.count(REPLICASETS, ns + "-other") == 0
    name = f"cluster-{ns}"
    created = await storage.create(CLUSTERS, obj(CLUSTERS, "", name, spec={"server": "https://x"}))
    assert "namespace" not in created["metadata"]
    assert await storage.get(CLUSTERS, "", name) == created
    page = await storage.list(CLUSTERS, None, match=lambda o: o["metadata"]["name"] == name)
    assert page.items == [created]


async def test_list_order_and_pagination(storage: Storage, ns: str) -> None:
    names = [f"rs-{i:02d}" for i in range(17)]
    for name in reversed(names):
        await storage.create(REPLICASETS, rs(ns, name))
    other = ns + "-b"
    await storage.create(REPLICASETS, rs(other, "first"))
    full = await storage.list(REPLICASETS, ns)
    assert [o["metadata"]["name"] for o in full.items] == names
    assert full.continue_key is None
    assert full.resource_version >= max(rv_of(o) for o in full.items)

    seen: list[str] = []
    after: tuple[str, str] | None = None
    pages = 0
    while True:
        page = await storage.list(REPLICASETS, ns, limit=5, after=after)
        pages += 1
        seen += [o["metadata"]["name"] for o in page.items]
        if page.continue_key is None:
            break
        assert page.continue_key == (ns, page.items[-1]["metadata"]["name"])
        after = page.continue_key
    assert seen == names
    assert pages == 4
    exact = await storage.list(REPLICASETS, ns, limit=17)
    assert len(exact.items) == 17
    assert exact.continue_key is None

    everywhere = await storage.list(REPLICASETS, None)
    keys = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everywhere.items]
    assert keys == sorted(keys)
    assert (other, "first") in keys
    assert (ns, "rs-00") in keys


async def test_list_filters(storage: Storage, ns: str) -> None:
    for i in range(30):
        tier = "front" if i % 3 == 0 else "back"
        await storage.create(
            REPLICASETS, rs(ns, f"rs-{i:02d}", replicas=i, labels={"tier": tier, "app": "shop"})
        )
    front = await storage.list(REPLICASETS, ns, label_equals={"tier": "front"})
    assert [o["metadata"]["name"] for o in front.items] == [f"rs-{i:02d}" for i in range(0, 30, 3)]
    assert all(labels_of(o)["tier"] == "front" for o in front.items)

    def even(o: Obj) -> bool:
        return int(o["spec"]["replicas"]) % 2 == 0

    first = await storage.list(
        REPLICASETS, ns, label_equals={"tier": "front", "app": "shop"}, match=even, limit=2
    )
    assert [o["metadata"]["name"] for o in first.items] == ["rs-00", "rs-06"]
    assert first.continue_key == (ns, "rs-06")
    rest = await storage.list(
        REPLICASETS, ns, label_equals={"tier": "front"}, match=even, after=first.continue_key
    )
    assert [o["metadata"]["name"] for o in rest.items] == ["rs-12", "rs-18", "rs-24"]
    assert rest.continue_key is None
    none = await storage.list(REPLICASETS, ns, label_equals={"tier": "middle"})
    assert none.items == []
    assert none.continue_key is None
    last = await storage.list(REPLICASETS, ns, match=lambda o: o["metadata"]["name"] == "rs-29", limit=1)
    assert [o["metadata"]["name"] for o in last.items] == ["rs-29"]
    assert last.continue_key is None


async def test_watch_from_a_version_sees_every_later_change_once_in_order(storage: Storage, ns: str) -> None:
    await storage.create(REPLICASETS, rs(ns, "before"))
    start = (await storage.list(REPLICASETS, ns)).resource_version
    a = await storage.create(REPLICASETS, rs(ns, "a"))
    a2 = await storage.update(REPLICASETS, rs(ns, "a", replicas=2))
    gone = await storage.delete(REPLICASETS, ns, "a")
    async with watching(storage, REPLICASETS, ns, since=start) as events:
        got = await take(events, 3)
    assert [(e.type, e.resource_version) for e in got] == [
        ("ADDED", rv_of(a)),
        ("MODIFIED", rv_of(a2)),
        ("DELETED", rv_of(gone)),
    ]
    assert got[1].object == a2
    assert got[2].object == gone


async def test_watch_with_concurrent_writers(storage: Storage, ns: str) -> None:
    start = await storage.current_version()
    async with watching(storage, REPLICASETS, ns, since=start) as events:

        async def writer(k: int) -> list[tuple[str, int]]:
            done = []
            for i in range(4):
                created = await storage.create(REPLICASETS, rs(ns, f"w{k}-{i}"))
                done.append(("ADDED", rv_of(created)))
                updated = await storage.update(REPLICASETS, rs(ns, f"w{k}-{i}", replicas=2))
                done.append(("MODIFIED", rv_of(updated)))
            return done

        results = await asyncio.gather(*(writer(k) for k in range(12)))
        expected = sorted((rv, kind) for done in results for kind, rv in done)
        got = await take(events, len(expected), seconds=20)
    versions = [e.resource_version for e in got]
    assert versions == sorted(versions), "in version order"
    assert [(e.resource_version, e.type) for e in got] == expected, "each change exactly once"
    assert all(rv_of(e.object) == e.resource_version for e in got)


async def test_watch_namespace_and_match(storage: Storage, ns: str) -> None:
    other = ns + "-other"
    now = await storage.current_version()
    async with watching(
        storage, REPLICASETS, ns, since=now, match=lambda o: o["spec"]["replicas"] > 1
    ) as events:
        await storage.create(REPLICASETS, rs(other, "elsewhere", replicas=5))
        await storage.create(REPLICASETS, rs(ns, "small", replicas=1))
        big = await storage.create(REPLICASETS, rs(ns, "big", replicas=3))
        got = await take(events, 1)
    assert [(e.type, e.object) for e in got] == [("ADDED", big)]


async def test_filtered_watch_sees_objects_enter_and_leave_the_selection(storage: Storage, ns: str) -> None:
    """As Kubernetes: an object that stops matching a watch's selector is DELETED for that watcher,
    and one that starts matching is ADDED."""
    web = await storage.create(REPLICASETS, rs(ns, "web", labels={"tier": "web"}))
    now = await storage.current_version()
    async with watching(
        storage,
        REPLICASETS,
        ns,
        since=now,
        match=lambda o: o["metadata"].get("labels", {}).get("tier") == "web",
    ) as events:
        moved = await storage.update(
            REPLICASETS, {**web, "metadata": {**web["metadata"], "labels": {"tier": "db"}}}
        )
        moved_again = await storage.update(REPLICASETS, {**moved, "spec": {"replicas": 2}})
        back = await storage.update(
            REPLICASETS, {**moved_again, "metadata": {**moved_again["metadata"], "labels": {"tier": "web"}}}
        )
        scaled = await storage.update(REPLICASETS, {**back, "spec": {"replicas": 3}})
        got = await take(events, 3)
    assert [(e.type, e.resource_version) for e in got] == [
        ("DELETED", int(moved["metadata"]["resourceVersion"])),
        ("ADDED", int(back["metadata"]["resourceVersion"])),
        ("MODIFIED", int(scaled["metadata"]["resourceVersion"])),
    ]


async def test_watch_from_a_too_old_version_is_gone(make_storage: MakeStorage, ns: str) -> None:
    storage = await make_storage(window=5)
    start = await storage.current_version()
    for i in range(8):
        await storage.create(REPLICASETS, rs(ns, f"rs-{i}"))
    assert await gone_within(storage, since=start, seconds=5.0) == (410, "Expired")
    recent = await storage.current_version() - 2
    async with watching(storage, REPLICASETS, ns, since=recent) as events:
        got = await take(events, 2)
    assert [e.object["metadata"]["name"] for e in got] == ["rs-6", "rs-7"]


async def test_sealed_fields_round_trip(storage: Storage, ns: str) -> None:
    data = {"password": base64.b64encode(b"hunter2").decode()}
    start = await storage.current_version()
    created = await storage.create(SECRETS, obj(SECRETS, ns, "db", type="Opaque", data=data))
    assert created["data"] == data
    assert (await storage.get(SECRETS, ns, "db"))["data"] == data
    updated = await storage.update(SECRETS, obj(SECRETS, ns, "db", type="Opaque", stringData={"user": "me"}))
    assert "data" not in updated
    assert updated["stringData"] == {"user": "me"}
    listed = await storage.list(SECRETS, ns)
    assert listed.items == [updated]
    deleted = await storage.delete(SECRETS, ns, "db")
    assert deleted["stringData"] == {"user": "me"}
    async with watching(storage, SECRETS, ns, since=start) as events:
        got = await take(events, 3)
    assert [e.object.get("data") for e in got] == [data, None, None]
    assert [e.object.get("stringData") for e in got] == [None, {"user": "me"}, {"user": "me"}]


# -- Postgres only ----------------------------------------------------------------------------------


async def test_every_storage_on_a_database_sees_every_change(
    postgres: Callable[..., Awaitable[PostgresStorage]], ns: str
) -> None:
    one, two = await postgres(), await postgres()
    start = await one.current_version()
    async with watching(two, REPLICASETS, ns, since=start) as events:
        written = [await one.create(REPLICASETS, rs(ns, f"rs-{i}")) for i in range(3)]
        written.append(await two.update(REPLICASETS, rs(ns, "rs-0", replicas=3)))
        got = await take(events, 4)
    assert [e.object for e in got] == written


async def test_a_new_storage_resumes_watches_from_the_log(
    postgres: Callable[..., Awaitable[PostgresStorage]], ns: str
) -> None:
    first = await postgres()
    start = await first.current_version()
    created = [await first.create(REPLICASETS, rs(ns, f"rs-{i}")) for i in range(3)]
    await first.close()
    restarted = await postgres()
    async with watching(restarted, REPLICASETS, ns, since=start) as events:
        got = await take(events, 3)
    assert [e.object for e in got] == created


async def test_secret_values_are_not_in_the_database_in_clear(
    postgres: Callable[..., Awaitable[PostgresStorage]], database_url: str, postgres_server: Any, ns: str
) -> None:
    clear = f"s3cr3t-{uuid.uuid4().hex}"
    encoded = base64.b64encode(clear.encode()).decode()
    storage = await postgres()
    await storage.create(
        SECRETS, obj(SECRETS, ns, "creds", data={"token": encoded}, stringData={"pw": clear})
    )
    # kubectl apply keeps the whole manifest, data included, in an annotation
    applied = json.dumps({"apiVersion": "v1", "kind": "Secret", "stringData": {"pw": clear}})
    annotated = obj(SECRETS, ns, "creds", data={"token": encoded})
    annotated["metadata"]["annotations"] = {LAST_APPLIED: applied, "team": "a"}
    await storage.update(SECRETS, annotated)
    stored = await storage.get(SECRETS, ns, "creds")
    assert stored["data"] == {"token": encoded}
    assert stored["metadata"]["annotations"] == {"team": "a", LAST_APPLIED: applied}
    database = database_url.rsplit("/", 1)[1].split("?")[0]
    pg_dump = await asyncio.create_subprocess_exec(
        str(postgres_server.bin_dir / "pg_dump"),
        "--no-owner",
        "-d",
        postgres_server.libpq_url(database),
        stdout=asyncio.subprocess.PIPE,
    )
    dump, _ = await asyncio.wait_for(pg_dump.communicate(), 60)
    assert pg_dump.returncode == 0
    assert b"creds" in dump, "the dump holds the object"
    for needle in (clear, encoded, base64.b64encode(clear.encode()).decode().rstrip("=")):
        assert needle.encode() not in dump


async def test_sealed_rows_cannot_be_swapped_or_read_without_the_key(
    postgres: Callable[..., Awaitable[PostgresStorage]], database_url: str, ns: str
) -> None:
    storage = await postgres()
    await storage.create(SECRETS, obj(SECRETS, ns, "a", data={"k": "YQ=="}))
    await storage.create(SECRETS, obj(SECRETS, ns, "b", data={"k": "Yg=="}))
    stranger = await postgres(sealer_=Sealer.generate("other"))
    with pytest.raises(ApiError) as err:
        await stranger.get(SECRETS, ns, "a")
    assert err.value.code == 500
    assert "YQ" not in err.value.message
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(libpq, autocommit=True) as conn:
        await conn.execute(
            "UPDATE objects SET sealed = (SELECT sealed FROM objects WHERE namespace = %s AND name = 'a')"
            " WHERE namespace = %s AND name = 'b'",
            (ns, ns),
        )
    with pytest.raises(ApiError) as err:
        await storage.get(SECRETS, ns, "b")
    assert err.value.code == 500
    # Without the key a secret can still be deleted (a lost key must not make it undeletable).
    start = await stranger.current_version()
    deleted = await stranger.delete(SECRETS, ns, "a")
    assert "data" not in deleted
    async with watching(stranger, SECRETS, ns, since=start) as events:
        (event,) = await take(events, 1)
    assert (event.type, event.object["metadata"]["name"]) == ("DELETED", "a")
    assert stranger.feed_error is None


async def test_values_postgres_cannot_store_are_a_bad_request(
    postgres: Callable[..., Awaitable[PostgresStorage]], ns: str
) -> None:
    storage = await postgres()
    version = await storage.current_version()
    with pytest.raises(ApiError) as err:
        await storage.create(REPLICASETS, rs(ns, "nul", status={"note": "private\u0000text"}))
    assert err.value.code == 400
    assert "private" not in err.value.message
    assert await storage.current_version() == version
    assert await storage.create(REPLICASETS, rs(ns, "fine"))


async def test_compaction_keeps_the_newest_changes(
    postgres: Callable[..., Awaitable[PostgresStorage]], database_url: str, ns: str
) -> None:
    storage = await postgres(window=3, retention=3)
    for i in range(6):
        await storage.create(REPLICASETS, rs(ns, f"rs-{i}"))
    newest = await storage.current_version()
    await storage.compact()
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(libpq) as conn:
        cur = await conn.execute("SELECT min(resource_version), max(resource_version) FROM changes")
        assert await cur.fetchone() == (newest - 2, newest)
    assert await storage.current_version() == newest
