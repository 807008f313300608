"""Turning a storage watch into what a watch request streams: events, bookmarks, an end.

:func:`follow` drives one storage watch for one HTTP request. It never cancels the storage's
iterator mid-step (an async generator cancelled inside ``__anext__`` is finished for good);
bookmarks come from the storage, which knows when a quiet watcher has been handed everything up to
its newest version. It ends at the request's timeout, at the end of the storage stream, or after
one ``ERROR`` (a 410 for a version older than the window); and it always closes the storage
iterator, so no subscriber outlives its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from federation.apimachinery.errors import ApiError
from federation.apimachinery.resources import Obj
from federation.apimachinery.storage import WatchEvent

Step = tuple[str, Obj, int]
"""(type, object, version): a change, ``("BOOKMARK", {}, newest version)`` or ``("ERROR", status, 0)``."""


async def follow(events: AsyncIterator[WatchEvent], *, duration: float) -> AsyncIterator[Step]:
    """The steps of a watch (the storage's events, bookmarks included) until ``duration`` is up."""
    deadline = time.monotonic() + duration
    stream = events.__aiter__()
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if pending is None:
                pending = asyncio.ensure_future(stream.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=remaining)
            if not done:
                return
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                return
            except ApiError as err:
                yield ("ERROR", err.status(), 0)
                return
            yield (event.type, event.object, event.resource_version)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, ApiError):
                await pending
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()
