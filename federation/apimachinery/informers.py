"""The informer: a cache of the current objects of one kind, kept by list + watch.

Controllers read what is, not what happened: a reconcile asks "which pods does this ReplicaSet
have now", and should not ask the store each time. An :class:`Informer` lists one kind (optionally
one namespace, optionally a label selector) from a :class:`Source`, then follows its watch, and
keeps an in-memory cache of the current objects, as client-go's shared informer does:

* reads are indexed by namespace, by label (``key=value``) and by index functions the caller names
  (:meth:`Informer.add_index` / :meth:`Informer.by_index`);
* handlers are called on add, update (old, new) and delete, and every ``resync_period`` with an
  update whose old and new are the same object (client-go's resync: a level-based controller gets
  to look at everything again, from the cache, without a relist);
* a watch that ends resumes from the last version seen; a watch that expires (410 Gone) relists,
  as does any other error after a backoff; a relist replaces the cache and calls the handlers for
  the differences only (objects added, changed or gone meanwhile);
* everything handed out (reads and handler arguments) is a copy: changing it never changes the
  cache (sample-controller's "never mutate what you read", here made impossible to get wrong),
  except where a caller says it only reads: :meth:`Informer.peek`, :meth:`Informer.peek_index`, and
  handlers marked ``read_only`` get the cached objects themselves (copying each object for each
  handler, twice per update, was a tenth of the controllers' time in a failover);
* :meth:`Informer.wait_synced` returns once the first list is in the cache.

Where the objects come from is a :class:`Source` (client-go's ``ListerWatcher``): a list with a
version and a watch from a version. :class:`StorageSource` reads any
:class:`~federation.apimachinery.storage.Storage` (the federation's Postgres, a simulated cluster's
memory); a member cluster's source through the Kubernetes client has the same two methods, so the
informer itself does not know which API server it follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from federation.apimachinery.errors import ApiError, Gone
from federation.apimachinery.objects import copy_json, labels_of, name_of, namespace_of, rv_of
from federation.apimachinery.queueing import backoff
from federation.apimachinery.resources import Obj, ResourceType
from federation.apimachinery.selectors import LabelSelector
from federation.apimachinery.storage import ObjectFilter, Storage, WatchEvent

log = logging.getLogger(__name__)

ObjectKey = tuple[str, str]
"""(namespace, name) of a cached object; namespace ``""`` for a cluster-scoped kind."""
IndexFunc = Callable[[Obj], Iterable[str]]
"""The values an object is filed under in one index (none, one or several)."""

NAMESPACE_INDEX: Final = "namespace"
LABEL_INDEX: Final = "label"
RELIST_BASE_DELAY: Final = 0.05
RELIST_MAX_DELAY: Final = 5.0


@dataclass(frozen=True)
class Listing:
    """What a list returns: every matching object, and the version a watch resumes from."""

    items: list[Obj]
    resource_version: int


class Source(Protocol):
    """Where an informer's objects come from: one kind, already narrowed (namespace, selector)."""

    async def list(self) -> Listing:
        """Every current object, and the version the list reflects."""
        ...

    def watch(self, *, since: int) -> AsyncIterator[WatchEvent]:
        """Changes after ``since``, in order, an object that stops matching as DELETED and one
        that starts matching as ADDED; raises Gone when ``since`` is too old. May yield BOOKMARK
        events (empty object, a version to resume from). Each event's object is the receiver's
        own (a copy, or freshly decoded): the informer keeps it as it is."""
        ...

    def describe(self) -> str:
        """What this source follows, for logs (``pods in shop``)."""
        ...


class StorageSource:
    """A :class:`Source` over a :class:`Storage`: one kind, optionally one namespace, optionally
    a label selector (``label_selector``) and/or any filter (``match``)."""

    def __init__(
        self,
        storage: Storage,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        label_selector: LabelSelector | None = None,
        match: ObjectFilter | None = None,
        progress: float | None = None,
    ) -> None:
        self.storage = storage
        self.rt = rt
        self.namespace = namespace
        self.label_selector = label_selector
        self._extra = match
        self.progress = progress
        """Seconds of quiet after which the watch yields a bookmark (None: no bookmarks)."""

    def _match(self, obj: Obj) -> bool:
        if self.label_selector is not None and not self.label_selector.matches(labels_of(obj)):
            return False
        return self._extra is None or self._extra(obj)

    @property
    def _filter(self) -> ObjectFilter | None:
        return self._match if self.label_selector is not None or self._extra is not None else None

    async def list(self) -> Listing:
        page = await self.storage.list(self.rt, self.namespace, match=self._filter)
        return Listing(page.items, page.resource_version)

    def watch(self, *, since: int) -> AsyncIterator[WatchEvent]:
        return self.storage.watch(
            self.rt, self.namespace, since=since, match=self._filter, progress=self.progress
        )

    def describe(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        selected = f" ({self.label_selector})" if self.label_selector is not None else ""
        return f"{self.rt.plural}{where}{selected}"


@dataclass(frozen=True)
class Handlers:
    """Callbacks of an informer; each gets copies of its own, or with ``read_only`` the cached
    objects themselves, which it must not change (nor anything it hands them to). A handler that
    raises is logged and the informer goes on (a controller's handler only queues keys)."""

    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None
    read_only: bool = False


def _namespace_values(obj: Obj) -> list[str]:
    return [namespace_of(obj)]


def _label_values(obj: Obj) -> list[str]:
    return [f"{key}={value}" for key, value in labels_of(obj).items()]


def key_of(obj: Obj) -> ObjectKey:
    return (namespace_of(obj), name_of(obj))


class Informer:
    """The cache of one :class:`Source` (see the module docstring). Run :meth:`run` as a task."""

    def __init__(
        self, source: Source, *, name: str | None = None, resync_period: float | None = None
    ) -> None:
        self.source = source
        self.name = name or source.describe()
        self.resync_period = resync_period
        self._objects: dict[ObjectKey, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[ObjectKey]]] = {}
        self._filed: dict[str, dict[ObjectKey, tuple[str, ...]]] = {}
        """Per index, the values each object is filed under (to unfile it on change)."""
        self._handlers: list[Handlers] = []
        self._version = 0
        self._synced = asyncio.Event()
        self.relists = 0
        """How many times the cache was replaced by a list (the first list included)."""
        self.add_index(NAMESPACE_INDEX, _namespace_values)
        self.add_index(LABEL_INDEX, _label_values)

    # ------------------------------------------------------------------ configuration

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """File every object (those cached already, and those to come) under ``fn(obj)`` in the
        index ``name``, for :meth:`by_index`."""
        if name in self._index_funcs:
            raise ValueError(f"informer {self.name} already has an index named {name!r}")
        self._index_funcs[name] = fn
        self._indexes[name] = {}
        self._filed[name] = {}
        for key, obj in self._objects.items():
            self._file(name, key, obj)

    def add_handlers(self, handlers: Handlers) -> None:
        """Call ``handlers`` from now on; objects already cached are handed to ``on_add`` first, as
        a handler added to a running client-go informer sees them."""
        self._handlers.append(handlers)
        if handlers.on_add is not None:
            for obj in list(self._objects.values()):
                self._call(handlers, handlers.on_add, obj)

    # ------------------------------------------------------------------ reads (copies)

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Until the first list is in the cache."""
        await self._synced.wait()

    @property
    def resource_version(self) -> int:
        """The version the cache reflects (the last list or event seen)."""
        return self._version

    def get(self, namespace: str, name: str) -> Obj | None:
        found = self._objects.get((namespace, name))
        return copy_json(found) if found is not None else None

    def peek(self, namespace: str, name: str) -> Obj | None:
        """The cached object itself, not a copy, for a caller that only reads it: never change
        it. (An event replaces a cached object rather than changing it, so a reference stays
        what it was.)"""
        return self._objects.get((namespace, name))

    def keys(self) -> list[ObjectKey]:
        return sorted(self._objects)

    def by_label(self, key: str, value: str) -> list[Obj]:
        return self.by_index(LABEL_INDEX, f"{key}={value}")

    def by_index(self, name: str, value: str) -> list[Obj]:
        """Objects filed under ``value`` in the index ``name``, ordered by (namespace, name)."""
        index = self._indexes.get(name)
        if index is None:
            raise KeyError(f"informer {self.name} has no index named {name!r}")
        return [copy_json(self._objects[k]) for k in sorted(index.get(value, ()))]

    def peek_index(self, name: str, value: str) -> list[Obj]:
        """:meth:`by_index` without the copies, for a caller that only reads (see :meth:`peek`)."""
        index = self._indexes.get(name)
        if index is None:
            raise KeyError(f"informer {self.name} has no index named {name!r}")
        return [self._objects[k] for k in sorted(index.get(value, ()))]

    def index_values(self, name: str) -> list[str]:
        """The values of the index ``name`` that have at least one object."""
        return sorted(self._indexes[name])

    def __len__(self) -> int:
        return len(self._objects)

    # ------------------------------------------------------------------ the cache

    def _file(self, index: str, key: ObjectKey, obj: Obj) -> None:
        try:
            values = tuple(dict.fromkeys(self._index_funcs[index](obj)))
        except Exception:
            log.exception("%s: index %r failed on %s/%s; not indexed there", self.name, index, *key)
            values = ()
        self._filed[index][key] = values
        for value in values:
            self._indexes[index].setdefault(value, set()).add(key)

    def _unfile(self, index: str, key: ObjectKey) -> None:
        table = self._indexes[index]
        for value in self._filed[index].pop(key, ()):
            keys = table.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del table[value]

    def _store(self, key: ObjectKey, obj: Obj) -> Obj | None:
        """Put ``obj`` (the cache's own copy) in; the object it replaced, if any."""
        old = self._objects.get(key)
        self._objects[key] = obj
        for index in self._index_funcs:
            if old is not None:
                self._unfile(index, key)
            self._file(index, key, obj)
        return old

    def _remove(self, key: ObjectKey) -> Obj | None:
        old = self._objects.pop(key, None)
        if old is not None:
            for index in self._index_funcs:
                self._unfile(index, key)
        return old

    def _call(self, h: Handlers, fn: Callable[..., None], *objs: Obj) -> None:
        try:
            if h.read_only:
                fn(*objs)
            else:
                fn(*(copy_json(o) for o in objs))
        except Exception:
            log.exception("%s: a handler failed", self.name)

    def _added(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h, h.on_add, obj)

    def _updated(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h, h.on_update, old, new)

    def _deleted(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h, h.on_delete, obj)

    def _apply(self, event: WatchEvent) -> None:
        self._version = max(self._version, event.resource_version)
        if event.type == "BOOKMARK":
            return
        key = key_of(event.object)
        if event.type == "DELETED":
            gone = self._remove(key)
            if gone is not None:
                self._deleted(event.object)
            return
        obj = event.object  # the receiver's own (Source.watch)
        old = self._store(key, obj)
        if old is None:
            self._added(obj)
        else:
            self._updated(old, obj)

    def _replace(self, listing: Listing) -> None:
        """Make the cache the listing; handlers hear only of the differences."""
        fresh = {key_of(obj): obj for obj in listing.items}
        for key in [k for k in self._objects if k not in fresh]:
            gone = self._remove(key)
            if gone is not None:
                self._deleted(gone)
        for key, item in fresh.items():
            current = self._objects.get(key)
            if current is not None and rv_of(current) == rv_of(item):
                continue
            obj = copy_json(item)
            old = self._store(key, obj)
            if old is None:
                self._added(obj)
            else:
                self._updated(old, obj)
        self._version = listing.resource_version
        self.relists += 1

    def _resync(self) -> None:
        for obj in list(self._objects.values()):
            self._updated(obj, obj)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """List, then follow the watch, until cancelled (see the module docstring for how it
        recovers). Restartable: a second run resumes from the version the cache reflects."""
        failures = 0
        must_list = not self.synced
        resync_task = (
            asyncio.create_task(self._resync_every(self.resync_period), name=f"{self.name}/resync")
            if self.resync_period
            else None
        )
        try:
            while True:
                try:
                    if must_list:
                        self._replace(await self.source.list())
                        self._synced.set()
                        must_list = False
                    async for event in self.source.watch(since=self._version):
                        failures = 0
                        self._apply(event)
                    delay = RELIST_BASE_DELAY  # it ended (a server's timeout): resume where it was
                except Gone as err:
                    log.info("%s: watch expired (%s); relisting", self.name, err.message)
                    must_list = True
                    delay = 0.0
                except ApiError as err:
                    failures += 1
                    must_list = True
                    delay = backoff(failures, base=RELIST_BASE_DELAY, cap=RELIST_MAX_DELAY)
                    if failures == 1:
                        log.warning(
                            "%s: list or watch failed (%d %s: %s); relisting with backoff",
                            self.name,
                            err.code,
                            err.reason,
                            err.message,
                        )
                await asyncio.sleep(delay)
        finally:
            if resync_task is not None:
                resync_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync_task

    async def _resync_every(self, period: float) -> None:
        due = time.monotonic() + period
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += period
            if self.synced:
                self._resync()

    # Last in the class: below it, ``list`` in an annotation would name this method.
    def list(self, namespace: str | None = None) -> list[Obj]:
        """Cached objects (of one namespace, or all), ordered by (namespace, name)."""
        if namespace is None:
            return [copy_json(self._objects[k]) for k in sorted(self._objects)]
        return self.by_index(NAMESPACE_INDEX, namespace)
