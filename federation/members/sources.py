"""What the federation manages in a member, followed by an informer: list + watch over the client.

DESIGN.md "Propagation": status and drift arrive as events, not by polling, from informers over
each member selected by the ``federation.io/managed-by`` label. A :class:`MemberSource` is the
:class:`~federation.apimachinery.Source` the project's ``Informer`` follows, unchanged:

* ``list()`` lists every namespace through the :class:`~federation.members.Member` (its threads);
* ``watch(since=)`` runs the blocking :meth:`MemberClient.watch` in a thread of its own (a watch
  holds its thread for minutes; it must not take one of the member's call threads) and hands each
  event to the event loop through an ``asyncio.Queue``: events that arrive while the loop has not
  yet taken the last ones go with them, in one ``call_soon_threadsafe`` (on a busy loop, one call
  and one wake-up per event cost the loop more than the event itself);
* a translated error of the watch (``Gone``, ``MemberUnreachable`` ...) is raised from the async
  iterator, so the informer relists (at once for Gone, after a backoff otherwise); an unexpected
  exception is logged once with its traceback and raised as an ``InternalError``;
* closing the async iterator (the informer stops or relists, its task is cancelled) stops the
  thread at once: the socket is shut down under its blocked read; closing the member does the same.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

from federation.apimachinery import ApiError, Listing, ResourceType, WatchEvent, internal

if TYPE_CHECKING:
    from federation.members.member import Member

log = logging.getLogger(__name__)


class _End:
    """The watch thread finished without an error."""


_END: Final = _End()
_Item = WatchEvent | ApiError | _End


class MemberSource:
    """One kind in every namespace of one member, narrowed by a label and/or a field selector."""

    def __init__(
        self,
        member: Member,
        rt: ResourceType,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 60,
    ) -> None:
        self.member = member
        self.rt = rt
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.timeout_seconds = timeout_seconds
        """How long each watch request lasts before the server ends it and the informer resumes."""

    def describe(self) -> str:
        selected = ",".join(s for s in (self.label_selector, self.field_selector) if s)
        return f"{self.rt.plural} in cluster {self.member.name} ({selected})"

    async def list(self) -> Listing:
        return await self.member.list(
            self.rt, None, label_selector=self.label_selector, field_selector=self.field_selector
        )

    def watch(self, *, since: int) -> AsyncIterator[WatchEvent]:
        return self._follow(since)

    async def _follow(self, since: int) -> AsyncIterator[WatchEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        stream = self.member.client.watch(
            self.rt,
            None,
            since=since,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=self.timeout_seconds,
        )

        batch: list[_Item] = []  # handed over, not yet on the loop
        lock = threading.Lock()

        def deliver() -> None:  # on the loop
            with lock:
                items = batch.copy()
                batch.clear()
            for item in items:
                queue.put_nowait(item)

        def hand_over(item: _Item) -> None:
            with lock:
                batch.append(item)
                if len(batch) > 1:  # a delivery is already on its way: it takes this one too
                    return
            try:
                loop.call_soon_threadsafe(deliver)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stream.stop()

        def pump() -> None:
            try:
                for event in stream:
                    hand_over(event)
                hand_over(_END)
            except ApiError as err:
                hand_over(err)
            except Exception as err:
                log.exception("%s: the watch failed unexpectedly", self.describe())
                hand_over(internal(f"cluster {self.member.name}: watch failed: {type(err).__name__}"))
            finally:
                stream.close()

        thread = threading.Thread(
            target=pump, name=f"member-{self.member.name}-watch-{self.rt.plural}", daemon=True
        )
        self.member._watching(stream)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    return
                if isinstance(item, ApiError):
                    raise item
                yield item
        finally:
            stream.stop()
            self.member._unwatched(stream)
