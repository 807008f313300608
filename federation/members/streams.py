"""One watch request to a member, read as a blocking iterator of events that another thread can stop.

A watch is one long HTTP response of newline-delimited events (DESIGN.md "API conventions"). A
:class:`WatchStream` opens it on the first ``next()`` (so making one does no I/O), then yields one
:class:`~federation.apimachinery.WatchEvent` per line:

* ADDED / MODIFIED / DELETED with the object (``apiVersion`` and ``kind`` filled in when missing),
  and BOOKMARK with the version to resume from;
* an ``ERROR`` event raises what its Status stands for (410 ``Expired`` -> ``Gone``: relist);
* the stream's end (the server's ``timeoutSeconds``) ends the iteration; a broken or silent
  connection (no byte for the read timeout, which must exceed how long the server may stay quiet)
  raises a translated :class:`~federation.members.MemberUnreachable`.

:meth:`WatchStream.stop` may be called from any thread: it shuts the socket down, so a reader
blocked on it returns at once and the iteration ends quietly (no error for a stop that was asked
for). Whatever happens, the response is released, so its connection goes back to the pool.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import urllib3

from federation.apimachinery import Obj, ResourceType, WatchEvent
from federation.members.failures import BAD_RESPONSE, MemberUnreachable, status_object_error, unreachable

Opener = Callable[[], urllib3.BaseHTTPResponse]
"""Sends the watch request; returns a 2xx response not yet read, or raises a translated error."""

_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


def _version(obj: Obj) -> int:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(value))
    except ValueError:
        return 0


class WatchStream(Iterator[WatchEvent]):
    """The events of one watch request (see the module docstring)."""

    def __init__(self, cluster: str, rt: ResourceType, opener: Opener, *, read_timeout: float) -> None:
        self.cluster = cluster
        self.rt = rt
        self._opener = opener
        self.read_timeout = read_timeout
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._lines: Iterator[bytes] | None = None
        self._stopped = False
        self._done = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """End the stream from any thread; a blocked read returns at once."""
        with self._lock:
            self._stopped = True
            response = self._response
        if response is not None:
            response.shutdown()

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> WatchEvent:
        if self._done or self._stopped:
            self._finish()
            raise StopIteration
        if self._lines is None:
            self._open()
        assert self._lines is not None
        while True:
            try:
                line = next(self._lines)
            except StopIteration:
                self._finish(whole=True)
                raise
            except (urllib3.exceptions.HTTPError, OSError) as err:
                self._finish()
                if self._stopped:
                    raise StopIteration from None
                raise unreachable(self.cluster, err, read_timeout=self.read_timeout) from err
            if line.strip():
                return self._event(line)

    def _open(self) -> None:
        response = self._opener()
        with self._lock:
            self._response = response
            stopped = self._stopped
        if stopped:
            response.shutdown()
        self._lines = _lines(response)

    def _event(self, line: bytes) -> WatchEvent:
        try:
            doc: Any = json.loads(line)
            kind = doc["type"]
            obj = doc.get("object") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            self._finish()
            raise MemberUnreachable(
                503,
                "ServiceUnavailable",
                f"cluster {self.cluster}: a watch event is not JSON",
                failure=BAD_RESPONSE,
            ) from None
        if kind == "ERROR":
            self._finish()
            raise status_object_error(self.cluster, obj if isinstance(obj, dict) else {})
        if kind not in _TYPES or not isinstance(obj, dict):
            self._finish()
            raise MemberUnreachable(
                503,
                "ServiceUnavailable",
                f"cluster {self.cluster}: a watch event of unknown type {str(kind)[:40]!r}",
                failure=BAD_RESPONSE,
            )
        if kind != "BOOKMARK":
            obj.setdefault("apiVersion", self.rt.api_version)
            obj.setdefault("kind", self.rt.kind)
        return WatchEvent(kind, obj, _version(obj))

    def _finish(self, *, whole: bool = False) -> None:
        """Release the response (once): a stream read to its end (``whole``) leaves a reusable
        connection; one cut short is closed first so the pool never hands out a half-read one."""
        if self._done:
            return
        self._done = True
        with self._lock:
            response, self._response = self._response, None
        if response is None:
            return
        if self._stopped or not whole:
            response.close()
        response.release_conn()

    def close(self) -> None:
        """Stop and release (from the reading thread, or once it is done)."""
        self.stop()
        self._finish()


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Complete lines of a chunked response, each as soon as its newline arrives."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending.strip():
        yield pending
