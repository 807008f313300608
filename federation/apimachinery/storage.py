"""The storage contract both API servers are built on.

The federation keeps objects in Postgres (``federation.store``); each simulated member cluster keeps
them in memory (:mod:`federation.apimachinery.memory`). Both implement :class:`Storage`, which is
deliberately close to Kubernetes' ``storage.Interface``: whole objects in, whole objects out, a
single increasing ``resourceVersion`` per storage, optimistic concurrency through that version, and
watches that can resume from any version still in the watch window.

Guarantees every implementation gives:

* ``resourceVersion`` values are decimal strings of one strictly increasing sequence; the order of
  versions is the order in which changes became visible.
* ``create`` fails with AlreadyExists, ``get``/``update``/``delete`` with NotFound, and ``update``
  or ``delete`` with a ``precondition_rv`` that is no longer current with Conflict. A failed call
  changes nothing.
* A watch from version N yields every change after N exactly once, in order, or raises Gone
  (410) when N is older than the storage's window.
* Objects handed in are not kept by reference and objects handed out are the caller's to change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from federation.apimachinery.resources import Obj, ResourceType

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True)
class WatchEvent:
    type: WatchEventType
    object: Obj
    resource_version: int
    """The version of the change (equals the object's ``metadata.resourceVersion``)."""


@dataclass(frozen=True)
class ListPage:
    items: list[Obj]
    resource_version: int
    """The storage version the list reflects: a watch from it misses nothing that came after."""
    continue_key: tuple[str, str] | None
    """(namespace, name) of the last item when more items remain, else None."""


ObjectFilter = Callable[[Obj], bool]


class Storage(Protocol):
    """Objects of every kind of one server, keyed by (resource type, namespace, name).

    ``namespace`` is ``""`` for cluster-scoped kinds. ``None`` as a list/watch namespace means
    all namespaces.
    """

    async def create(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a new object; sets ``metadata.resourceVersion``; returns the stored object."""
        ...

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj: ...

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
        """Objects ordered by (namespace, name), those after ``after`` only, at most ``limit``
        (0 = all). ``label_equals`` is a hint a storage may use to narrow its scan; ``match`` is
        the full filter and is applied to every candidate."""
        ...

    async def update(self, rt: ResourceType, obj: Obj, *, precondition_rv: int | None = None) -> Obj:
        """Replace the stored object named by ``obj.metadata``; with ``precondition_rv``, only if
        that is still its version (else Conflict). Sets the new ``resourceVersion``."""
        ...

    async def delete(
        self, rt: ResourceType, namespace: str, name: str, *, precondition_rv: int | None = None
    ) -> Obj:
        """Remove the object; returns it as it was, with the version of the deletion."""
        ...

    async def count(self, rt: ResourceType, namespace: str) -> int:
        """How many objects of the kind the namespace holds (for namespace termination)."""
        ...

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        since: int | None,
        match: ObjectFilter | None = None,
        progress: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Changes after version ``since`` (None: from now on). Raises Gone when ``since`` is
        older than the watch window. The iterator ends only when the storage closes. With
        ``progress`` (seconds), a quiet watch also yields ``BOOKMARK`` events (empty object)
        whose version is safe to resume from."""
        ...

    async def current_version(self) -> int:
        """The newest version whose change is visible to readers."""
        ...
