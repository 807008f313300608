"""One keep-alive HTTP/1.1 connection that sends GETs, for the traffic probe.

Why not httpx: measured here (2 shared cores), httpx spent 1.4-3.4 ms of CPU per GET on loopback
(anyio layers, a pool that scans every waiter, a failed ``import sniffio`` per request), so
``fedctl traffic test`` could not pace more than ~100 requests a second next to the simulator; this
client spends a small fraction of that, and keeps httpx a test-only dependency.

What it does, and only that: ``GET`` over plain TCP or TLS (``https``, verified), bodies by
``Content-Length``, ``chunked`` or end of connection, ``Connection: close`` honoured. A request on a
reused connection that the server had already closed is retried once on a new connection, as
browsers do, so an outage shows as the refusal a new visitor gets. Errors are ``OSError`` (refused,
reset, ...), ``asyncio.IncompleteReadError`` or :class:`ProtocolError`; after one the connection is
closed and the next GET opens a new one. No redirects, no proxies, no cookies.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

KEPT_BODY = 64 * 1024
"""Bytes of a body kept (enough to read a region from JSON); the rest is read and dropped."""
_MAX_HEADER_LINES = 200
_NO_BODY = frozenset({204, 304})


class ProtocolError(ValueError):
    """The server's answer is not HTTP/1.x as we read it."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes  # the first KEPT_BODY bytes


@dataclass(frozen=True)
class Target:
    """Where the GETs go: from an http(s) URL."""

    host: str
    port: int
    tls: bool
    request: bytes

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rpartition("@")[2]
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: fedctl-traffic\r\nAccept: */*\r\n\r\n"
        ).encode("ascii")
        return cls(host=parts.hostname, port=port, tls=tls, request=request)


class Connection:
    """A lazily opened, kept-alive connection to one target; one request at a time."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self) -> Answer:
        reused = self._writer is not None
        try:
            return await self._exchange()
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as err:
            self.close()
            if not reused or (isinstance(err, asyncio.IncompleteReadError) and err.partial):
                raise
        return await self._exchange()  # the server had closed the idle connection: once more, anew

    async def _exchange(self) -> Answer:
        try:
            if self._reader is None or self._writer is None:
                self._reader, self._writer = await self._open()
            self._writer.write(self.target.request)
            answer, keep = await _read_answer(self._reader)
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return answer

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = ssl.create_default_context() if self.target.tls else None
        return await asyncio.open_connection(self.target.host, self.target.port, ssl=context)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    line = await reader.readline()
    if not line:
        raise asyncio.IncompleteReadError(b"", None)
    try:
        version, code, *_ = line.decode("latin-1").split(" ", 2)
        status = int(code)
    except ValueError:
        raise ProtocolError(f"not an HTTP status line: {line[:80]!r}") from None
    if not version.startswith("HTTP/1."):
        raise ProtocolError(f"not HTTP/1.x: {line[:80]!r}")
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADER_LINES):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n"):
            break
        if not raw:
            raise asyncio.IncompleteReadError(b"", None)
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(f"bad header line: {raw[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    else:
        raise ProtocolError("too many header lines")
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if status < 200 or status in _NO_BODY:
        return Answer(status, headers, b""), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise ProtocolError("bad Content-Length") from None
        body = await _read_length(reader, length)
    else:
        body, keep = await _read_to_end(reader), False
    return Answer(status, headers, body), keep


async def _read_length(reader: asyncio.StreamReader, length: int) -> bytes:
    kept = await reader.readexactly(min(length, KEPT_BODY))
    left = length - len(kept)
    while left > 0:
        left -= len(await reader.readexactly(min(left, KEPT_BODY)))
    return kept


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    kept = bytearray()
    while True:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size: {size_line[:40]!r}") from None
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(kept)
        chunk = await _read_length(reader, size)
        if len(kept) < KEPT_BODY:
            kept += chunk[: KEPT_BODY - len(kept)]
        await reader.readline()  # the CRLF after the chunk


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    kept = bytearray()
    while chunk := await reader.read(KEPT_BODY):
        if len(kept) < KEPT_BODY:
            kept += chunk[: KEPT_BODY - len(kept)]
    return bytes(kept)
