"""In-memory :class:`~federation.apimachinery.storage.Storage`, the store of a simulated cluster.

One dict per resource, one version counter, one watch cache. Every method runs without awaiting
in the middle of a change, so on one event loop each change is atomic and versions are handed
out in the order changes become visible.

Secondary indexes (:meth:`MemoryStorage.add_index`, client-go's ``Indexer``) group the objects of
one resource by values computed from each object, kept in the same step as every write, so a
simulated cluster's controllers read a ReplicaSet's pods or a node's pods without listing, and
deep-copying, every pod of the cluster: that list was 70 % of the simulator's time with 2,000 pods
per cluster (py-spy, ``tests/bench/simulator.py``). Nothing but the simulator adds indexes; without
one the storage behaves as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from dataclasses import dataclass, field

from federation.apimachinery.errors import already_exists, conflict, not_found
from federation.apimachinery.objects import copy_json, labels_of, meta, name_of, namespace_of, rv_of
from federation.apimachinery.resources import Obj, ResourceType
from federation.apimachinery.storage import EventType, ListPage, ObjectFilter, WatchEvent
from federation.apimachinery.watchcache import Change, ResourceKey, WatchCache, resource_key

IndexFunc = Callable[[Obj], Iterable[Hashable]]
"""The values an object is filed under in one index (none, one or several)."""


@dataclass
class _Index:
    values_of: IndexFunc
    groups: dict[Hashable, dict[tuple[str, str], Obj]] = field(default_factory=dict)
    filed: dict[tuple[str, str], tuple[Hashable, ...]] = field(default_factory=dict)
    """Where each object is filed, as computed when it was stored (removal does not recompute)."""

    def put(self, key: tuple[str, str], obj: Obj, values: tuple[Hashable, ...]) -> None:
        self.drop(key)
        for value in values:
            self.groups.setdefault(value, {})[key] = obj
        if values:
            self.filed[key] = values

    def drop(self, key: tuple[str, str]) -> None:
        for value in self.filed.pop(key, ()):
            group = self.groups.get(value)
            if group is not None:
                group.pop(key, None)
                if not group:
                    del self.groups[value]

    def group(self, value: Hashable) -> list[Obj]:
        found = self.groups.get(value)
        return [found[k] for k in sorted(found)] if found else []


class MemoryStorage:
    def __init__(self, *, window: int = 10_000) -> None:
        self._objects: dict[ResourceKey, dict[tuple[str, str], Obj]] = {}
        self._indexes: dict[ResourceKey, dict[str, _Index]] = {}
        self._version = 0
        self.cache = WatchCache(capacity=window)

    def _table(self, rt: ResourceType) -> dict[tuple[str, str], Obj]:
        return self._objects.setdefault(resource_key(rt), {})

    def _commit(self, rt: ResourceType, kind: EventType, obj: Obj) -> Obj:
        self._version += 1
        meta(obj)["resourceVersion"] = str(self._version)
        self.cache.append(Change(resource_key(rt), namespace_of(obj), kind, copy_json(obj), self._version))
        return obj

    def _filing(self, rt: ResourceType, obj: Obj) -> list[tuple[_Index, tuple[Hashable, ...]]]:
        """Where ``obj`` goes in each index of ``rt``, computed before anything changes (an index
        function that raises fails the write and changes nothing)."""
        indexes = self._indexes.get(resource_key(rt))
        if not indexes:
            return []
        return [(index, tuple(index.values_of(obj))) for index in indexes.values()]

    # ------------------------------------------------------------------ secondary indexes

    def add_index(self, rt: ResourceType, name: str, values_of: IndexFunc) -> None:
        """File every ``rt`` object, now and after each write, under the values ``values_of(obj)``
        returns; read them back with :meth:`indexed`. ``values_of`` must be a pure function of the
        object. ValueError if ``rt`` already has an index called ``name``."""
        indexes = self._indexes.setdefault(resource_key(rt), {})
        if name in indexes:
            raise ValueError(f"{rt.plural} already have an index named {name!r}")
        index = _Index(values_of)
        for key, obj in self._table(rt).items():
            index.put(key, obj, tuple(values_of(obj)))
        indexes[name] = index

    def _index(self, rt: ResourceType, name: str) -> _Index:
        index = self._indexes.get(resource_key(rt), {}).get(name)
        if index is None:
            raise KeyError(f"{rt.plural} have no index named {name!r}")
        return index

    def indexed(self, rt: ResourceType, name: str, value: Hashable) -> list[Obj]:
        """Copies of the ``rt`` objects filed under ``value`` in index ``name``, by (namespace, name)."""
        return [copy_json(obj) for obj in self._index(rt, name).group(value)]

    def indexed_readonly(self, rt: ResourceType, name: str, value: Hashable) -> list[Obj]:
        """The stored objects themselves, not copies, filed under ``value``, by (namespace, name).

        For the simulator's hot paths that read many objects and change few. The caller must never
        change them (copy first, as for a write) and must read them again after its next ``await``
        if it needs them current: a write replaces a stored object, it does not change it."""
        return self._index(rt, name).group(value)

    def list_readonly(self, rt: ResourceType, namespace: str | None) -> list[Obj]:
        """The stored ``rt`` objects of ``namespace`` (None: all) themselves, not copies, by
        (namespace, name); the same rules as :meth:`indexed_readonly`."""
        table = self._table(rt)
        return [table[k] for k in sorted(table) if namespace is None or k[0] == namespace]

    def indexed_count(self, rt: ResourceType, name: str, value: Hashable) -> int:
        """How many ``rt`` objects are filed under ``value`` in index ``name``."""
        return len(self._index(rt, name).groups.get(value) or ())

    def index_values(self, rt: ResourceType, name: str) -> list[Hashable]:
        """Every value that has at least one object filed under it in index ``name``."""
        return list(self._index(rt, name).groups)

    # ------------------------------------------------------------------ the Storage contract

    async def create(self, rt: ResourceType, obj: Obj) -> Obj:
        table = self._table(rt)
        key = (namespace_of(obj), name_of(obj))
        if key in table:
            raise already_exists(rt.plural, key[1], rt.group)
        stored = copy_json(obj)
        filing = self._filing(rt, stored)
        self._commit(rt, "ADDED", stored)
        table[key] = stored
        for index, values in filing:
            index.put(key, stored, values)
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
        filing = self._filing(rt, stored)
        self._commit(rt, "MODIFIED", stored)
        table[key] = stored
        for index, values in filing:
            index.put(key, stored, values)
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
        for index in self._indexes.get(resource_key(rt), {}).values():
            index.drop((namespace, name))
        gone = copy_json(current)  # the stored object stays as it was for readers that hold it
        self._commit(rt, "DELETED", gone)
        return gone

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
