"""The window of recent changes that watches are served from.

Like the Kubernetes apiserver's watch cache: a ring buffer of the newest changes of one storage,
each stamped with its resourceVersion, plus the live subscribers. A watch from version N replays
the buffered changes after N and then follows new ones; N older than the window gets 410 Gone and
the client relists. Everything runs on one event loop, so replay and subscription happen with no
change slipping between them.

Storages feed it in version order (``append``); it never reorders.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from federation.apimachinery.errors import gone
from federation.apimachinery.objects import copy_json, meta
from federation.apimachinery.resources import Obj, ResourceType
from federation.apimachinery.storage import EventType, ObjectFilter, WatchEvent

DRAIN_BATCH = 100
"""A watcher takes at most this many queued changes in a row before it lets the event loop run."""

ResourceKey = tuple[str, str]
"""(group, plural): which resource a change belongs to."""


def resource_key(rt: ResourceType) -> ResourceKey:
    return (rt.group, rt.plural)


@dataclass(frozen=True)
class Change:
    key: ResourceKey
    namespace: str
    type: EventType
    object: Obj
    resource_version: int
    previous: Obj | None = None
    """The object before this change, when the cache saw it (set by :meth:`WatchCache.append`)."""


class _Subscriber:
    def __init__(
        self, key: ResourceKey, namespace: str | None, match: ObjectFilter | None, size: int
    ) -> None:
        self.key = key
        self.namespace = namespace
        self.match = match
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def wants(self, change: Change) -> bool:
        if change.key != self.key:
            return False
        return self.namespace is None or change.namespace == self.namespace

    def offer(self, change: Change) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            # A watcher that cannot keep up is closed, as Kubernetes does: it ends right after the
            # last change it was handed (nothing queued is kept, so nothing is skipped) and
            # resumes from that version, getting what it missed from the window, or 410.
            self.end()

    def end(self) -> None:
        """End this watch after the changes already handed out; the client resumes from there."""
        self.overflowed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class WatchCache:
    def __init__(self, *, capacity: int = 10_000, horizon: int = 0, subscriber_buffer: int = 10_000) -> None:
        self._buffer: deque[Change] = deque(maxlen=capacity)
        self._horizon = horizon
        """Every change with a version above this is still in the buffer."""
        self._newest = horizon
        self._subscribers: set[_Subscriber] = set()
        self._latest: dict[tuple[ResourceKey, str, str], Change] = {}
        """The newest buffered change of each object, for selector transitions."""
        self._subscriber_buffer = subscriber_buffer
        self._closed = False

    @property
    def newest(self) -> int:
        return self._newest

    @property
    def horizon(self) -> int:
        return self._horizon

    def append(self, change: Change) -> None:
        if change.resource_version <= self._newest:
            raise ValueError(f"change {change.resource_version} is not newer than {self._newest}")
        identity = (change.key, change.namespace, str(meta(change.object).get("name", "")))
        before = self._latest.get(identity)
        if before is not None and change.type != "ADDED":
            change = replace(change, previous=before.object)
        if len(self._buffer) == self._buffer.maxlen:
            evicted = self._buffer[0]
            self._horizon = evicted.resource_version
            evicted_identity = (evicted.key, evicted.namespace, str(meta(evicted.object).get("name", "")))
            if self._latest.get(evicted_identity) is evicted:
                del self._latest[evicted_identity]
        self._buffer.append(change)
        self._newest = change.resource_version
        if change.type == "DELETED":
            self._latest.pop(identity, None)
        else:
            self._latest[identity] = change
        for sub in list(self._subscribers):
            if sub.wants(change):
                sub.offer(change)

    def reset(self, horizon: int) -> None:
        """Forget the window: history up to ``horizon`` is gone (compacted before this cache saw
        it). Open watches end; resuming from a version before ``horizon`` then gets 410 Gone."""
        for sub in list(self._subscribers):
            sub.end()
        self._buffer.clear()
        self._latest.clear()
        self._horizon = horizon
        self._newest = max(self._newest, horizon)

    def advance(self, version: int) -> None:
        """Note that versions up to ``version`` carried no change (gaps in the sequence)."""
        self._newest = max(self._newest, version)

    def close(self) -> None:
        self._closed = True
        for sub in list(self._subscribers):
            sub.queue.put_nowait(None) if not sub.queue.full() else None

    async def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        since: int | None,
        match: ObjectFilter | None,
        progress: float | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Changes after ``since``; with ``progress``, also a ``BOOKMARK`` carrying the newest version
        after each ``progress`` seconds without a change for this watcher. A bookmark is only sent
        when this watcher has been handed every change up to that version, so resuming from it
        misses nothing, however narrow the watcher's namespace or selector."""
        key = resource_key(rt)
        start = self._newest if since is None else since
        if start < self._horizon:
            raise gone(f"too old resource version: {start} ({self._horizon + 1})")
        sub = _Subscriber(key, namespace, match, self._subscriber_buffer)
        backlog = [c for c in self._buffer if c.resource_version > start and sub.wants(c)]
        self._subscribers.add(sub)
        pending: asyncio.Task[Change | None] | None = None
        announced = start
        try:
            for change in backlog:
                event = _event(change, match)
                if event is not None:
                    yield event
            in_a_row = 0
            while not self._closed:
                if pending is None and not sub.queue.empty() and in_a_row < DRAIN_BATCH:
                    # Queued changes are handed out without a task and a pass of the event loop
                    # each: on a busy loop, a pass is milliseconds, and a watcher that waited
                    # for one per change fell seconds behind (1,000 Secrets: 15 s at the median).
                    # Every DRAIN_BATCH changes it waits once, so others get the loop too.
                    item = sub.queue.get_nowait()
                    in_a_row += 1
                else:
                    if pending is None:
                        pending = asyncio.ensure_future(sub.queue.get())
                    await asyncio.wait({pending}, timeout=progress)
                    if not pending.done():
                        # Nothing queued for this watcher: it has had every change up to the newest.
                        if self._newest > announced:
                            announced = self._newest
                            yield WatchEvent("BOOKMARK", {}, announced)
                        continue
                    item, pending, in_a_row = pending.result(), None, 0
                if item is None:
                    return
                if item.resource_version <= start:
                    continue  # a watch from a version newer than the cache skips what it has seen
                announced = max(announced, item.resource_version)
                event = _event(item, match)
                if event is not None:
                    yield event
        finally:
            if pending is not None:
                pending.cancel()
            self._subscribers.discard(sub)


def _event(change: Change, match: ObjectFilter | None) -> WatchEvent | None:
    """The event a filtered watcher sees, as Kubernetes sends it: an object that stops matching
    the selector is DELETED for that watcher, one that starts matching is ADDED. Where the cache
    did not see the object before (older than the window), it counts as matching before iff it
    matches now."""
    kind = change.type
    if match is not None:
        now = match(change.object)
        if kind == "MODIFIED" and change.previous is not None:
            before = match(change.previous)
            if now and not before:
                kind = "ADDED"
            elif before and not now:
                kind = "DELETED"
            elif not now:
                return None
        elif not now:
            return None
    return WatchEvent(kind, copy_json(change.object), change.resource_version)
