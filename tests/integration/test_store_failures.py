"""The store under concurrency and failure: what a review found broken, each now as it should be.

A watcher that overflows, a feed that falls behind another process's compaction, a token revoked
during an authentication, pooled connections after a database restart, text Postgres cannot store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

import psycopg
import pytest
from psycopg import sql

from federation.apimachinery.errors import ApiError, Unavailable
from federation.apimachinery.kinds import REPLICASETS, SECRETS
from federation.apimachinery.objects import rv_of
from federation.apimachinery.resources import Obj, ResourceType
from federation.apimachinery.storage import WatchEvent
from federation.apimachinery.watchcache import Change, WatchCache
from federation.store import PostgresStorage, Sealer, TokenStore, make_engine

pytestmark = pytest.mark.anyio

MakePostgres = Callable[..., Awaitable[PostgresStorage]]


def obj(rt: ResourceType, namespace: str, name: str, **fields: Any) -> Obj:
    metadata: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4()), "namespace": namespace}
    return {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": metadata, **fields}


def rs(namespace: str, name: str, **fields: Any) -> Obj:
    return obj(REPLICASETS, namespace, name, spec={"replicas": 1}, **fields)


def libpq(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def database_name(database_url: str) -> str:
    return database_url.rsplit("/", 1)[1].split("?")[0]


@pytest.fixture(scope="module")
def sealer() -> Sealer:
    """One key for the module: a change another test sealed must not stall a later storage's feed."""
    return Sealer.generate()


@pytest.fixture
def ns() -> str:
    return f"ns-{uuid.uuid4().hex[:10]}"


async def terminate(url: str, app: str) -> int:
    """Kill every server connection of ``app`` (what a database restart does to it); ``url``: any
    database on the server (libpq or SQLAlchemy form)."""
    async with await psycopg.AsyncConnection.connect(libpq(url), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (app,),
        )
        row = await cur.fetchone()
        # pg_terminate_backend only signals; the restart is over once the backends have exited
        for _ in range(100):
            left = await (
                await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
                )
            ).fetchone()
            if left is not None and left[0] == 0:
                break
            await asyncio.sleep(0.02)
    return int(row[0]) if row else 0


async def collect(events: AsyncGenerator[WatchEvent, None], *, quiet: float) -> list[WatchEvent]:
    """Events until none arrives for ``quiet`` seconds."""
    got: list[WatchEvent] = []
    while True:
        try:
            got.append(await asyncio.wait_for(anext(events), quiet))
        except TimeoutError:
            return got


# -- 1. a watcher that overflows loses the oldest queued change ----------------------------------------


def _change(version: int) -> Change:
    o = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": f"rs-{version}", "namespace": "a"},
    }
    o["metadata"]["resourceVersion"] = str(version)
    return Change(("apps", "replicasets"), "a", "ADDED", o, version)


async def test_overflowing_watcher_resumes_without_losing_a_change() -> None:
    cache = WatchCache(capacity=100, subscriber_buffer=2)
    cache.append(_change(1))
    seen: list[int] = []
    watch = cast(AsyncGenerator[WatchEvent, None], cache.watch(REPLICASETS, None, since=0, match=None))
    async with contextlib.aclosing(watch):
        seen.append((await anext(watch)).resource_version)  # subscribed now; the watcher is slow
        for version in (2, 3, 4):  # one more than its queue holds: the watch is closed
            cache.append(_change(version))
        async for event in watch:
            seen.append(event.resource_version)
    # What a client does when a watch ends: resume from the last version it saw.
    resume = cast(
        AsyncGenerator[WatchEvent, None], cache.watch(REPLICASETS, None, since=seen[-1], match=None)
    )
    async with contextlib.aclosing(resume):
        seen += [e.resource_version for e in await collect(resume, quiet=0.2)]
    assert seen == [1, 2, 3, 4]


# -- 2. a feed that falls behind compaction silently skips changes -------------------------------------


async def test_feed_that_falls_behind_compaction_does_not_skip_changes(
    postgres: MakePostgres, database_url: str, postgres_server: Any, ns: str
) -> None:
    app = f"rev-a-{uuid.uuid4().hex[:8]}"
    behind = await postgres(app=app, window=10, retention=10)
    writer = await postgres(window=3, retention=3)
    start = await writer.current_version()
    first = await writer.create(REPLICASETS, rs(ns, "rs-0"))
    events = cast(AsyncGenerator[WatchEvent, None], behind.watch(REPLICASETS, ns, since=start))
    async with contextlib.aclosing(events):
        assert (await asyncio.wait_for(anext(events), 5)).object == first
        # ``behind`` loses the database (a partition, or a restart it comes back from later than
        # the others): new connections are refused and its open ones are gone. ``writer`` keeps
        # its open connections and goes on writing and compacting.
        database = database_name(database_url)
        admin = await psycopg.AsyncConnection.connect(postgres_server.libpq_url("postgres"), autocommit=True)
        try:
            await admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(database))
            )
            assert await terminate(postgres_server.libpq_url("postgres"), app) >= 1
            written = [await writer.create(REPLICASETS, rs(ns, f"rs-{i}")) for i in range(1, 6)]
            assert await writer.compact() > 0
        finally:
            await admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(database))
            )
            await admin.close()
        try:
            got = [rv_of(e.object) for e in await collect(events, quiet=3.0)]
        except StopAsyncIteration:
            # The watch ended: the client resumes from the last version it saw, which must not
            # silently skip the compacted changes: it gets them, or 410 Gone and relists.
            resumed = cast(
                AsyncGenerator[WatchEvent, None], behind.watch(REPLICASETS, ns, since=rv_of(first))
            )
            async with contextlib.aclosing(resumed):
                try:
                    got = [rv_of(e.object) for e in await collect(resumed, quiet=3.0)]
                except ApiError as err:
                    got = [err.code]
        except ApiError as err:  # 410 Gone is a correct answer too
            got = [err.code]
    assert got in ([rv_of(o) for o in written], [410])


# -- 3. a token deleted during a concurrent authentication stays cached --------------------------------


async def test_deleted_token_is_not_cached_by_a_concurrent_authentication(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=4)
    store = TokenStore(engine, cache_seconds=60)
    name = f"rev-{uuid.uuid4().hex[:8]}"
    token = await store.create(name, "admin")
    locker = await psycopg.AsyncConnection.connect(libpq(database_url))
    try:
        # Hold the row for a moment (any writer touching it does: another process's delete, or
        # an authentication updating last_used_at), so both calls below overlap.
        await locker.execute("SELECT 1 FROM tokens WHERE name = %s FOR UPDATE", (name,))
        deleting = asyncio.create_task(store.delete(name))
        await asyncio.sleep(0.3)
        authenticating = asyncio.create_task(store.authenticate(token))
        await asyncio.sleep(0.3)
        await locker.commit()
        assert await asyncio.wait_for(deleting, 5) is True
        await asyncio.wait_for(authenticating, 5)  # may succeed: it started before the delete ended
        assert await store.authenticate(token) is None, "a token deleted through this store works"
    finally:
        await locker.close()
        await engine.dispose()


# -- 4. after a database restart, every pooled connection fails one request ---------------------------


async def test_requests_after_a_database_restart_succeed(
    postgres: MakePostgres, database_url: str, ns: str
) -> None:
    app = f"rev-p-{uuid.uuid4().hex[:8]}"
    storage = await postgres(app=app)
    await storage.create(REPLICASETS, rs(ns, "web"))
    await asyncio.gather(*(storage.get(REPLICASETS, ns, "web") for _ in range(3)))  # a warm pool
    assert await terminate(database_url, app) >= 2  # the restart: every connection is cut
    # The database is up again; this is the first request after it.
    assert (await storage.get(REPLICASETS, ns, "web"))["metadata"]["name"] == "web"


# -- 5. a string Postgres cannot take in the object is a 500, not a 400 --------------------------------


@pytest.mark.parametrize("rt_name", ["replicasets", "secrets"])
async def test_lone_surrogate_is_a_bad_request(postgres: MakePostgres, ns: str, rt_name: str) -> None:
    storage = await postgres()
    if rt_name == "secrets":
        bad = obj(SECRETS, ns, "bad", stringData={"k": "\ud800"})
        rt = SECRETS
    else:
        bad = rs(ns, "bad", status={"note": "\ud800"})
        rt = REPLICASETS
    version = await storage.current_version()
    with pytest.raises(ApiError) as err:
        await storage.create(rt, bad)
    assert err.value.code == 400
    assert await storage.current_version() == version


# -- 6. group commit: concurrent writes share a transaction, and fail alone ----------------------------


async def test_concurrent_writes_fail_alone_and_stay_in_order(postgres: MakePostgres, ns: str) -> None:
    """Writes that arrive together are committed together; one Postgres refuses (a NUL in a
    string) must not take the others down with it, and the watch sees the rest once, in order."""
    storage = await postgres()
    # The feed has read a change, so a gap of rolled-back versions after it is known not to be
    # compaction (on a database with no change yet it cannot tell, and restarts watches).
    await storage.create(REPLICASETS, rs(ns, "first"))
    start = await storage.current_version()
    names = [f"rs-{i}" for i in range(40)]
    writes = [storage.create(REPLICASETS, rs(ns, n)) for n in names]
    writes.insert(17, storage.create(REPLICASETS, rs(ns, "nul", status={"note": "a\u0000b"})))
    writes.insert(30, storage.create(REPLICASETS, rs(ns, "rs-3")))  # a duplicate in the same batch
    results = await asyncio.gather(*writes, return_exceptions=True)
    failed = [r for r in results if isinstance(r, ApiError)]
    assert sorted(e.code for e in failed) == [400, 409]
    stored = [r for r in results if isinstance(r, dict)]
    assert sorted(o["metadata"]["name"] for o in stored) == sorted(names)
    versions = [int(rv_of(o)) for o in stored]
    assert len(set(versions)) == len(names)
    page = await storage.list(REPLICASETS, ns)
    assert sorted(o["metadata"]["name"] for o in page.items) == sorted([*names, "first"])
    async with contextlib.aclosing(storage.watch(REPLICASETS, ns, since=start)) as events:
        seen = [await asyncio.wait_for(anext(events), 5) for _ in names]
    assert [e.resource_version for e in seen] == sorted(versions)
    assert {e.object["metadata"]["name"] for e in seen} == set(names)


async def test_concurrent_updates_with_one_version_have_one_winner(postgres: MakePostgres, ns: str) -> None:
    storage = await postgres()
    created = await storage.create(REPLICASETS, rs(ns, "web"))
    version = int(rv_of(created))

    def changed(i: int) -> Obj:
        o = rs(ns, "web")
        o["spec"]["replicas"] = i
        o["metadata"]["uid"] = created["metadata"]["uid"]
        return o

    results = await asyncio.gather(
        *(storage.update(REPLICASETS, changed(i), precondition_rv=version) for i in range(20)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1
    assert all(isinstance(r, ApiError) and r.code == 409 for r in results if r not in winners)
    assert (await storage.get(REPLICASETS, ns, "web"))["spec"] == winners[0]["spec"]


# -- 7. token authentication while the database is down is a 503, not a 500 ---------------------------


async def test_token_authentication_while_the_database_is_down_is_unavailable(
    database_url: str, postgres_server: Any
) -> None:
    app = f"rev-t-{uuid.uuid4().hex[:8]}"
    engine = make_engine(database_url + f"&application_name={app}", pool_size=2)
    store = TokenStore(engine, cache_seconds=0)
    token = await store.create(f"outage-{uuid.uuid4().hex[:8]}", "viewer")
    assert await store.authenticate(token) is not None
    database = database_name(database_url)
    admin = await psycopg.AsyncConnection.connect(postgres_server.libpq_url("postgres"), autocommit=True)
    try:
        await admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(database))
        )
        try:
            assert await terminate(postgres_server.libpq_url("postgres"), app) >= 1
            with pytest.raises(Unavailable) as err:
                await store.authenticate(token)
            assert err.value.retry_after == 1
            assert database not in err.value.message
        finally:
            await admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(database))
            )
        # Back: the first request after the outage is served (a dead pooled connection is retried).
        assert await store.authenticate(token) is not None
        assert await terminate(postgres_server.libpq_url("postgres"), app) >= 1  # a restart
        assert await store.authenticate(token) is not None
    finally:
        await admin.close()
        await engine.dispose()


# -- 8. while the database is down, each request gets its 503 at once; recovery needs no restart -------


async def test_requests_while_the_database_is_down_fail_fast_and_recover(
    postgres: MakePostgres, database_url: str, postgres_server: Any, ns: str
) -> None:
    app = f"rev-d-{uuid.uuid4().hex[:8]}"
    storage = await postgres(app=app)
    await storage.create(REPLICASETS, rs(ns, "web"))
    database = database_name(database_url)
    admin = await psycopg.AsyncConnection.connect(postgres_server.libpq_url("postgres"), autocommit=True)
    try:
        await admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(database))
        )
        try:
            assert await terminate(postgres_server.libpq_url("postgres"), app) >= 1
            waits = []
            for _ in range(5):
                started = time.monotonic()
                with pytest.raises(Unavailable):
                    await storage.get(REPLICASETS, ns, "web")
                waits.append(time.monotonic() - started)
            # Nobody waits for a connection that cannot come: each 503 comes well before the 2 s
            # a readiness probe or a client allows (a pool that queues callers until a checkout
            # timeout, as psycopg-pool does by default for 30 s, would not).
            assert max(waits) < 1.0, waits
        finally:
            await admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(database))
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                assert (await storage.get(REPLICASETS, ns, "web"))["metadata"]["name"] == "web"
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the storage did not recover"
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
