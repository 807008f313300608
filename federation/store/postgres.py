"""The federation's :class:`~federation.apimachinery.storage.Storage`, in Postgres.

Every object is one row of ``objects``; every change is also one row of ``changes`` (the log watches
are served from) and takes its ``resourceVersion`` from ``resource_version_seq``. How the protocol's
guarantees are kept, and where:

* **Versions become visible in order.** Each write transaction is READ COMMITTED and holds an
  advisory lock from before ``nextval`` until its commit is visible, so version order is commit
  order. A reader that sees version N therefore sees every version below N, which makes
  ``max(changes.resource_version)`` in a list's snapshot the version the list reflects, and makes
  ``changes WHERE resource_version > last`` a feed that never skips a late commit
  (:mod:`~federation.store.statements`, :mod:`~federation.store.group_commit`).
* **Group commit, short critical section.** One writer per storage sends the transactions, each
  carrying every write queued meanwhile, its statements in one pipeline; JSON encoding and
  encryption happen before (:mod:`~federation.store.group_commit`, :mod:`~federation.store.rows`).
* **A failed call changes nothing.** The precondition is checked in the statement that takes
  ``nextval``, after the lock, so a refused write neither writes a row nor burns a version; a
  statement Postgres refuses fails alone.
* **Sealed fields** (a Secret's ``data``/``stringData``) are stored AES-GCM encrypted and decrypted
  transparently (:mod:`~federation.store.rows`).
* **Copies in, copies out.** Objects are copied on the way in (the caller's is never changed) and
  every read decodes a fresh object, so nobody holds a reference into the storage.
* **Watches across processes.** Each storage runs one change feed (LISTEN/NOTIFY and polling) into a
  :class:`~federation.apimachinery.watchcache.WatchCache`, which serves :meth:`PostgresStorage.watch`;
  it loads the newest ``window`` changes at start, so a watch can resume across a restart of the
  server, and compacts the log to ``retention`` versions (:mod:`~federation.store.change_feed`).
* **The database being down is a 503,** and the storage recovers by itself when it returns
  (:mod:`~federation.store.connections`).

The feed is started by :meth:`PostgresStorage.start` (or the first watch) and stopped by
:meth:`PostgresStorage.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from psycopg.rows import TupleRow
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.apimachinery import (
    ListPage,
    Obj,
    ObjectFilter,
    ResourceType,
    WatchEvent,
    already_exists,
    conflict,
    meta,
    name_of,
    namespace_of,
    not_found,
)
from federation.store.change_feed import ChangeFeed
from federation.store.connections import Connections, connect_args, engine_pool_size
from federation.store.group_commit import GroupCommitWriter
from federation.store.leases import Fence
from federation.store.rows import RowCodec, compact_json
from federation.store.sealing import Sealer
from federation.store.statements import (
    BEGIN_READ,
    COUNT,
    CREATE,
    DELETE,
    GET,
    UPDATE,
    VERSION,
    list_sql,
)


class PostgresStorage:
    """Objects of every kind in Postgres; see the module docstring for what it guarantees."""

    def __init__(
        self,
        engine: AsyncEngine,
        sealer: Sealer,
        *,
        window: int = 10_000,
        retention: int = 100_000,
        poll_interval: float = 1.0,
        compact_interval: float = 60.0,
        pool_size: int | None = None,
    ) -> None:
        if retention < window:
            raise ValueError("retention must keep at least the watch window")
        self.engine = engine
        """The engine it was made from (other store modules, leases and tokens, use its pool)."""
        size = pool_size if pool_size is not None else engine_pool_size(engine)
        self._codec = RowCodec(sealer)
        self._pool = Connections(connect_args(engine), size=size)
        self._writer = GroupCommitWriter(self._pool)
        self._feed = ChangeFeed(
            self._pool,
            self._codec,
            window=window,
            retention=retention,
            poll_interval=poll_interval,
            compact_interval=compact_interval,
        )
        self._starting = asyncio.Lock()
        self._closed = False
        self._view = False
        """A fenced view (:meth:`fenced`) shares this storage's connections and feed."""

    @property
    def feed_error(self) -> Exception | None:
        """The last error the watch feed hit (it keeps retrying); None when healthy."""
        return self._feed.error

    # lifecycle

    async def start(self) -> None:
        """Load the watch window and start following changes. Idempotent."""
        if self._view:
            return
        async with self._starting:
            if self._closed:
                raise RuntimeError("the storage is closed")
            if not self._feed.started:
                await self._feed.start()

    def fenced(self, fence: Fence) -> PostgresStorage:
        """This storage for a lease holder: reads and watches as here (the same connections and
        feed), writes only while ``fence.holder`` holds ``fence.lease`` (else :class:`Fenced`).
        Closing the view closes nothing of this storage's."""
        view = copy.copy(self)
        view._writer = GroupCommitWriter(self._pool, fence=fence)
        view._view = True
        return view

    async def close(self) -> None:
        """Stop the watch feed (open watches end) and close every connection. Idempotent."""
        self._closed = True
        await self._writer.drain()  # writes already queued are finished, not dropped
        if self._view:
            return
        async with self._starting:
            await self._feed.stop()
        await self._pool.close()

    async def __aenter__(self) -> PostgresStorage:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # writes

    async def create(self, rt: ResourceType, obj: Obj) -> Obj:
        row = self._codec.encode(rt, obj)
        found = await self._write(CREATE, row.params)
        if found is None:
            raise already_exists(rt.plural, row.params["name"], rt.group)
        meta(row.obj)["resourceVersion"] = str(found[0])
        return row.obj

    async def update(self, rt: ResourceType, obj: Obj, *, precondition_rv: int | None = None) -> Obj:
        row = self._codec.encode(rt, obj)
        row.params["precondition"] = precondition_rv
        found = await self._write(UPDATE, row.params)
        if found is None:
            raise not_found(rt.plural, row.params["name"], rt.group)
        if found[1] is None:
            raise conflict(rt.plural, row.params["name"], rt.group)
        meta(row.obj)["resourceVersion"] = str(found[1])
        return row.obj

    async def delete(
        self, rt: ResourceType, namespace: str, name: str, *, precondition_rv: int | None = None
    ) -> Obj:
        params = {"group": rt.group, "plural": rt.plural, "namespace": namespace, "name": name}
        found = await self._write(DELETE, {**params, "precondition": precondition_rv})
        if found is None:
            raise not_found(rt.plural, name, rt.group)
        _, body, sealed, key_id, version = found
        if version is None:
            raise conflict(rt.plural, name, rt.group)
        return self._codec.decode(
            rt.group, rt.plural, namespace, name, version, body, sealed, key_id, lenient=True
        )

    async def _write(self, statement: str, params: dict[str, Any]) -> TupleRow | None:
        if self._closed:
            raise RuntimeError("the storage is closed")
        return await self._writer.write(statement, params)

    # reads

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        params = {"group": rt.group, "plural": rt.plural, "namespace": namespace, "name": name}
        async with self._pool.connection() as conn:
            cur = await conn.execute(GET, params)
            found = await cur.fetchone()
        if found is None:
            raise not_found(rt.plural, name, rt.group)
        return self._codec.decode(rt.group, rt.plural, namespace, name, *found)

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        match: ObjectFilter | None = None,
        label_equals: dict[str, str] | None = None,
        limit: int = 0,
        after: tuple[str, str] | None = None,
    ) -> ListPage:
        # Rows and version come from one REPEATABLE READ snapshot. Without ``match`` one query
        # finds everything (limit + 1 rows tell whether more remain); with it, batches are read
        # in key order until limit + 1 objects matched.
        one_batch = match is None or limit == 0
        batch = 0 if limit == 0 else (limit + 1 if match is None else max(limit + 1, 256))
        params: dict[str, Any] = {"group": rt.group, "plural": rt.plural, "namespace": namespace}
        if label_equals:
            params["labels"] = compact_json(label_equals)
        if batch:
            params["limit"] = batch
        items: list[Obj] = []
        more: tuple[str, str] | None = None
        decode = self._codec.decode
        async with self._pool.connection() as conn:
            async with conn.pipeline():
                await conn.execute(BEGIN_READ)
                version_cur = await conn.execute(VERSION)
                rows_cur = await conn.execute(self._list_query(params, after), params)
                if one_batch:
                    await conn.execute("COMMIT")
            version_row = await version_cur.fetchone()
            version = int(version_row[0]) if version_row is not None else 0
            rows = await rows_cur.fetchall()
            while True:
                for ns, name, rv, body, sealed, key_id in rows:
                    obj = decode(rt.group, rt.plural, ns, name, rv, body, sealed, key_id)
                    if match is not None and not match(obj):
                        continue
                    if limit and len(items) == limit:
                        more = (namespace_of(items[-1]), name_of(items[-1]))
                        break
                    items.append(obj)
                if one_batch or more is not None or len(rows) < batch:
                    break
                after = (rows[-1][0], rows[-1][1])
                cur = await conn.execute(self._list_query(params, after), params)
                rows = await cur.fetchall()
            if not one_batch:
                await conn.execute("COMMIT")
        return ListPage(items, version, more)

    @staticmethod
    def _list_query(params: dict[str, Any], after: tuple[str, str] | None) -> str:
        if after is not None:
            params["after_namespace"], params["after_name"] = after
        return list_sql(
            all_namespaces=params["namespace"] is None,
            after=after is not None,
            labels="labels" in params,
            limited="limit" in params,
        )

    async def count(self, rt: ResourceType, namespace: str) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(COUNT, {"group": rt.group, "plural": rt.plural, "namespace": namespace})
            found = await cur.fetchone()
        return int(found[0]) if found is not None else 0

    async def current_version(self) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(VERSION)
            found = await cur.fetchone()
        return int(found[0]) if found is not None else 0

    # watches

    async def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        since: int | None,
        match: ObjectFilter | None = None,
        progress: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        await self.start()
        cache = self._feed.cache
        assert cache is not None
        if since is None:
            since = await self.current_version()
        # The feed may not have reached ``since`` yet (the version came from the database);
        # changes up to it may still arrive through the cache and are not the caller's.
        # WatchCache.watch is an async generator: close it with us, so it unsubscribes at once.
        events = cast(
            AsyncGenerator[WatchEvent, None],
            cache.watch(rt, namespace, since=since, match=match, progress=progress),
        )
        async with contextlib.aclosing(events):
            async for event in events:
                if event.resource_version > since:
                    yield event

    async def compact(self) -> int:
        """Delete change rows more than ``retention`` versions behind the newest; returns how many."""
        return await self._feed.compact()
