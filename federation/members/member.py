"""The async face of one member cluster, for the controllers: per-member threads, so per-member isolation.

DESIGN.md "Propagation": one slow or dead member never holds up the others. The official client
blocks, so a :class:`Member` runs its :class:`~federation.members.MemberClient`'s calls on a
``ThreadPoolExecutor`` of its own (``concurrency`` threads): a black-holed member ties up only its
own threads (each call ending at its read timeout) and the event loop and every other member go on.
Probes run on one more thread of their own, so a health probe never queues behind slow writes and
the health controller sees the member as it is now.

:meth:`Member.close` stops the executors without waiting for calls stuck on a dead member (they
end at their timeouts), ends the watches of its sources and closes the client; calls after it raise
``MemberUnreachable``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from federation.apimachinery import Listing, Obj, ResourceType
from federation.members.capacity import Capacity
from federation.members.clients import MemberClient, ProbeResult
from federation.members.failures import MemberUnreachable
from federation.members.sources import MemberSource
from federation.members.streams import WatchStream

T = TypeVar("T")


class Member:
    """Async calls to one member, each on this member's own threads (see the module docstring)."""

    def __init__(self, client: MemberClient, *, concurrency: int = 8) -> None:
        self.client = client
        self.name = client.name
        self.concurrency = concurrency
        self._calls = ThreadPoolExecutor(concurrency, thread_name_prefix=f"member-{self.name}")
        self._probes = ThreadPoolExecutor(1, thread_name_prefix=f"member-{self.name}-probe")
        self._streams: set[WatchStream] = set()
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"Member({self.name!r})"

    async def _run(self, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(executor, fn)
        except RuntimeError:  # the executor is shut down
            raise MemberUnreachable(
                503, "ServiceUnavailable", f"cluster {self.name}: the member is closed", failure="Closed"
            ) from None
        return await future

    async def probe(self, *, timeout: float) -> ProbeResult:  # noqa: ASYNC109
        """The client's probe on the probe thread; ``timeout`` bounds the request itself (a
        cancel scope could not end the blocked thread), so the answer comes within it."""
        return await self._run(self._probes, functools.partial(self.client.probe, timeout=timeout))

    async def version(self) -> str:
        return await self._run(self._calls, self.client.version)

    async def capacity(self) -> Capacity:
        return await self._run(self._calls, self.client.capacity)

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return await self._run(self._calls, functools.partial(self.client.get, rt, namespace, name))

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Listing:
        call = functools.partial(
            self.client.list, rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return await self._run(self._calls, call)

    async def create(self, rt: ResourceType, namespace: str, obj: Obj) -> Obj:
        return await self._run(self._calls, functools.partial(self.client.create, rt, namespace, obj))

    async def replace(self, rt: ResourceType, namespace: str, name: str, obj: Obj) -> Obj:
        call = functools.partial(self.client.replace, rt, namespace, name, obj)
        return await self._run(self._calls, call)

    async def delete(self, rt: ResourceType, namespace: str, name: str, *, uid: str | None = None) -> None:
        call = functools.partial(self.client.delete, rt, namespace, name, uid=uid)
        await self._run(self._calls, call)

    def source(
        self,
        rt: ResourceType,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 60,
    ) -> MemberSource:
        """An informer's :class:`~federation.apimachinery.Source` of ``rt`` in every namespace."""
        return MemberSource(
            self,
            rt,
            label_selector=label_selector,
            field_selector=field_selector,
            timeout_seconds=timeout_seconds,
        )

    # ------------------------------------------------------------------ watches of the sources

    def _watching(self, stream: WatchStream) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._streams.add(stream)
        if closed:
            stream.stop()

    def _unwatched(self, stream: WatchStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Stop the executors (not waiting for stuck calls), end the watches, close the client."""
        with self._lock:
            self._closed = True
            streams, self._streams = list(self._streams), set()
        for stream in streams:
            stream.stop()
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._probes.shutdown(wait=False, cancel_futures=True)
        self.client.close()
