"""Events the simulated cluster's components record, as ``kubectl get events`` shows them.

The ReplicaSet controller records ``SuccessfulCreate``/``SuccessfulDelete``, the scheduler
``Scheduled``/``FailedScheduling``, the service controller ``EnsuringLoadBalancer``/
``EnsuredLoadBalancer``: core/v1 Events with ``involvedObject``, ``source``, counts and timestamps, as
Kubernetes' event recorder writes them.

Guarantees: an Event is never written into a namespace that is gone or terminating (it would outlive
the namespace's deletion); a repeat of the same (object, reason, message) within the correlation window
bumps ``count`` and ``lastTimestamp`` of the existing Event instead of adding one; at most ``capacity``
Events per cluster are kept, the oldest removed first (Kubernetes bounds them by a TTL instead).
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections import OrderedDict
from typing import Literal

from federation.apimachinery.errors import NotFound
from federation.apimachinery.kinds import EVENTS, NAMESPACES
from federation.apimachinery.objects import meta, now_rfc3339
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
    def __init__(self, storage: Storage, *, host: str, capacity: int = DEFAULT_CAPACITY) -> None:
        self.storage = storage
        self.host = host
        self.capacity = capacity
        self._recent: OrderedDict[tuple[str, str, str, str], tuple[str, str]] = OrderedDict()
        """(involved uid, reason, message, component) -> (namespace, event name), oldest first."""

    async def record(
        self, involved: Obj, *, type: EventKind, reason: str, message: str, component: str
    ) -> None:
        m = meta(involved)
        namespace = str(m.get("namespace") or "default")
        if not await namespace_alive(self.storage, namespace):
            return
        now = now_rfc3339()
        key = (str(m.get("uid", "")), reason, message, component)
        known = self._recent.get(key)
        if known is not None:
            try:
                event = await self.storage.get(EVENTS, *known)
            except NotFound:
                del self._recent[key]
            else:
                event["count"] = int(event.get("count") or 1) + 1
                event["lastTimestamp"] = now
                await self.storage.update(EVENTS, event)
                self._recent.move_to_end(key)
                return
        name = f"{m.get('name', 'object')}.{secrets.token_hex(8)}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
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
        await self.storage.create(EVENTS, event)
        self._recent[key] = (namespace, name)
        while len(self._recent) > self.capacity:
            _, (old_ns, old_name) = self._recent.popitem(last=False)
            with contextlib.suppress(NotFound):
                await self.storage.delete(EVENTS, old_ns, old_name)
