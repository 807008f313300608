"""In-memory :class:`~federation.apimachinery.storage.Storage`, the store of a simulated cluster.

One dict per resource, one version counter, one watch cache. Every method runs without awaiting
in the middle of a change, so on one event loop each change is atomic and versions are handed
out in the order changes become visible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from federation.apimachinery.errors import already_exists, conflict, not_found
from federation.apimachinery.objects import copy_json, labels_of, meta, name_of, namespace_of, rv_of
from federation.apimachinery.resources import Obj, ResourceType
from federation.apimachinery.storage import EventType, ListPage, ObjectFilter, WatchEvent
from federation.apimachinery.watchcache import Change, ResourceKey, WatchCache, resource_key


class MemoryStorage:
    def __init__(self, *, window: int = 10_000) -> None:
        self._objects: dict[ResourceKey, dict[tuple[str, str], Obj]] = {}
        self._version = 0
        self.cache = WatchCache(capacity=window)

    def _table(self, rt: ResourceType) -> dict[tuple[str, str], Obj]:
        return self._objects.setdefault(resource_key(rt), {})

    def _commit(self, rt: ResourceType, kind: EventType, obj: Obj) -> Obj:
        self._version += 1
        meta(obj)["resourceVersion"] = str(self._version)
        self.cache.append(Change(resource_key(rt), namespace_of(obj), kind, copy_json(obj), self._version))
        return obj

    async def create(self, rt: ResourceType, obj: Obj) -> Obj:
        table = self._table(rt)
        key = (namespace_of(obj), name_of(obj))
        if key in table:
            raise already_exists(rt.plural, key[1], rt.group)
        stored = copy_json(obj)
        self._commit(rt, "ADDED", stored)
        table[key] = stored
        return copy_json(stored)

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        found = self._table(rt).get((namespace, name))
        if found is None:
            raise not_found(rt.plural, name, rt.group)
        return copy_json(found)

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
        keys = sorted(k for k in self._table(rt) if namespace is None or k[0] == namespace)
        if after is not None:
            keys = [k for k in keys if k > after]
        items: list[Obj] = []
        more: tuple[str, str] | None = None
        table = self._table(rt)
        for key in keys:
            obj = table[key]
            if label_equals and any(labels_of(obj).get(k) != v for k, v in label_equals.items()):
                continue
            if match is not None and not match(obj):
                continue
            if limit and len(items) == limit:
                more = (namespace_of(items[-1]), name_of(items[-1]))
                break
            items.append(copy_json(obj))
        return ListPage(items, self._version, more)

    async def update(self, rt: ResourceType, obj: Obj, *, precondition_rv: int | None = None) -> Obj:
        table = self._table(rt)
        key = (namespace_of(obj), name_of(obj))
        current = table.get(key)
        if current is None:
            raise not_found(rt.plural, key[1], rt.group)
        if precondition_rv is not None and precondition_rv != rv_of(current):
            raise conflict(rt.plural, key[1], rt.group)
        stored = copy_json(obj)
        self._commit(rt, "MODIFIED", stored)
        table[key] = stored
        return copy_json(stored)

    async def delete(
        self, rt: ResourceType, namespace: str, name: str, *, precondition_rv: int | None = None
    ) -> Obj:
        table = self._table(rt)
        current = table.get((namespace, name))
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        if precondition_rv is not None and precondition_rv != rv_of(current):
            raise conflict(rt.plural, name, rt.group)
        del table[(namespace, name)]
        self._commit(rt, "DELETED", current)
        return copy_json(current)

    async def count(self, rt: ResourceType, namespace: str) -> int:
        return sum(1 for k in self._table(rt) if k[0] == namespace)

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        since: int | None,
        match: ObjectFilter | None = None,
        progress: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        return self.cache.watch(rt, namespace, since=since, match=match, progress=progress)

    async def current_version(self) -> int:
        return self._version
