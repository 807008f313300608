"""The event recorder: what controllers tell people about objects, as ``kubectl get events`` shows.

Every control plane here records Events: each simulated cluster's components (the ReplicaSet
controller's ``SuccessfulCreate``, the scheduler's ``FailedScheduling``, ...) and the federation's
controllers (cluster health, propagation). :class:`EventRecorder` writes them as Kubernetes' event
recorder does: core/v1 Events with ``involvedObject``, ``source`` (component and host), counts and
timestamps, into the storage of the server that holds the object.

Guarantees: an Event is never written into a namespace that is gone or terminating (it would outlive
the namespace's deletion); a repeat of the same (object, type, reason, message, component) bumps
``count`` and ``lastTimestamp`` of the existing Event instead of adding one, as Kubernetes' event
correlator does; at most ``capacity`` Events of this recorder are kept, the oldest removed first
(Kubernetes bounds them by a TTL instead).

Events are written to the storage directly, not through the registry: they are made here whole
(uid and timestamps from :mod:`~federation.apimachinery.objects`), have no finalizers, generation or
status of their own, and the namespace check above is stricter than the registry's admission (which
trusts a namespace seen active for a second).
"""

from __future__ import annotations

import contextlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from federation.apimachinery.errors import Conflict, NotFound
from federation.apimachinery.kinds import EVENTS, NAMESPACES
from federation.apimachinery.objects import copy_json, meta, new_uid, now_rfc3339, rv_of
from federation.apimachinery.resources import Obj
from federation.apimachinery.storage import Storage

EventKind = Literal["Normal", "Warning"]
DEFAULT_CAPACITY = 5000


async def namespace_alive(storage: Storage, namespace: str) -> bool:
    """Whether objects may still be created in ``namespace`` (it exists and is not terminating)."""
    try:
        ns = await storage.get(NAMESPACES, "", namespace)
    except NotFound:
        return False
    return not meta(ns).get("deletionTimestamp")


class EventRecorder:
    """Records Events of one server's objects as ``component`` on ``host`` (``source`` of the Event)."""

    def __init__(
        self,
        storage: Storage,
        *,
        host: str,
        component: str = "",
        capacity: int = DEFAULT_CAPACITY,
        namespaces: Callable[[str], Obj | None] | None = None,
    ) -> None:
        self.namespaces = namespaces
        """The namespace of this name as a cache (an informer) last showed it, if the caller has
        one: asked first, so that recording an Event costs no read; storage is read when the cache
        has no such namespace."""
        self.storage = storage
        self.host = host
        self.component = component
        self.capacity = capacity
        self._recent: OrderedDict[tuple[str, str, str, str, str], Obj] = OrderedDict()
        """(involved uid, type, reason, message, component) -> the Event as last written, oldest
        first: a repeat bumps that version (the storage refuses it if the Event changed since,
        and it is read again)."""

    async def record(
        self,
        involved: Obj,
        *,
        type: EventKind,
        reason: str,
        message: str,
        component: str | None = None,
    ) -> None:
        """Record that ``reason``/``message`` happened to ``involved`` (as ``component``, default the
        recorder's own)."""
        component = component or self.component
        m = meta(involved)
        namespace = str(m.get("namespace") or "default")
        cached = self.namespaces(namespace) if self.namespaces is not None else None
        if cached is not None:
            if meta(cached).get("deletionTimestamp"):
                return
        elif not await namespace_alive(self.storage, namespace):
            return
        now = now_rfc3339()
        key = (str(m.get("uid", "")), type, reason, message, component)
        known = self._recent.get(key)
        if known is not None:
            try:
                await self._repeat(key, known, now)
            except NotFound:
                del self._recent[key]
            else:
                return
        name = f"{m.get('name', 'object')}.{secrets.token_hex(8)}"
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": new_uid(),
                "creationTimestamp": now,
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", ""),
                "kind": involved.get("kind", ""),
                "name": m.get("name", ""),
                "namespace": m.get("namespace", ""),
                "uid": m.get("uid", ""),
                "resourceVersion": m.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component, "host": self.host},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": self.host,
        }
        if not involved.get("apiVersion"):
            del event["involvedObject"]["apiVersion"]
        self._recent[key] = await self.storage.create(EVENTS, event)
        while len(self._recent) > self.capacity:
            _, old = self._recent.popitem(last=False)
            with contextlib.suppress(NotFound):
                await self.storage.delete(EVENTS, str(meta(old).get("namespace", "")), str(meta(old)["name"]))

    async def _repeat(self, key: tuple[str, str, str, str, str], known: Obj, now: str) -> None:
        """Count one more of a recorded Event: from the version last written, else read again."""
        event = copy_json(known)
        for _ in range(2):
            event["count"] = int(event.get("count") or 1) + 1
            event["lastTimestamp"] = now
            try:
                self._recent[key] = await self.storage.update(EVENTS, event, precondition_rv=rv_of(known))
            except Conflict:  # changed elsewhere since (a user's edit): count from what is there now
                known = await self.storage.get(
                    EVENTS, str(meta(known).get("namespace", "")), str(meta(known)["name"])
                )
                event = copy_json(known)
                continue
            self._recent.move_to_end(key)
            return
