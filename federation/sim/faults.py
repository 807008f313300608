"""Outages on demand: what a client sees when a region misbehaves.

One :class:`FaultState` per simulated cluster holds its current :class:`Fault`, and every address of the
cluster (its API server and each regional load-balancer address) honours it:

* ``down``: connections are refused. Implemented by the cluster suspending its listeners
  (:mod:`federation.sim.listening`): open connections are aborted, watches end, new connects get RST.
* ``blackhole``: connections are accepted (TCP and TLS complete) but nothing is ever answered, as when
  packets are dropped; a client sees its read timeout. Requests and streams in flight stall too. When
  the fault ends, what was held flows again (as after a partition heals); a held request whose client
  gave up is dropped without an answer.
* ``error``: every request is answered with ``status`` (500 by default) as a ``metav1.Status`` from the API
  server or plain text from a load-balancer address; 429 carries ``Retry-After: retry_after``. Like
  Kubernetes' API Priority and Fairness, which exempts health probes, a 429 fault leaves ``/healthz``,
  ``/readyz`` and ``/livez`` answering; any other error code covers them too.
* ``slow``: every request waits ``latency`` seconds before it is handled.

Healing (``FaultState.set(None)``) restores service at once. Faults never touch the cluster's storage:
an outage is not a wipe, and the in-cluster controllers keep running behind it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from federation.apimachinery import ApiError

FaultMode = Literal["down", "blackhole", "error", "slow"]
FAULT_MODES: tuple[str, ...] = get_args(FaultMode)
ERROR_CODES = (429, 500, 502, 503, 504)
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/livez"})
MAX_LATENCY = 300.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Fault:
    mode: FaultMode
    status: int = 500
    """HTTP status of an ``error`` fault: 429, 500, 502, 503 or 504."""
    retry_after: int = 1
    """Seconds in ``Retry-After`` of a 429 answer."""
    latency: float = 1.0
    """Seconds added to every request by a ``slow`` fault."""

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; use one of {', '.join(FAULT_MODES)}")
        if self.status not in ERROR_CODES:
            raise ValueError(f"error status must be one of {', '.join(map(str, ERROR_CODES))}")
        if not 0 <= self.retry_after <= 3600:
            raise ValueError("retry-after must be between 0 and 3600 seconds")
        if not 0 <= self.latency <= MAX_LATENCY:
            raise ValueError(f"latency must be between 0 and {MAX_LATENCY:g} seconds")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode}
        if self.mode == "error":
            out["status"] = self.status
            if self.status == 429:
                out["retryAfter"] = self.retry_after
        if self.mode == "slow":
            out["latency"] = self.latency
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        return cls(
            mode=data.get("mode"),  # type: ignore[arg-type]  # checked in __post_init__
            status=int(data.get("status", 500)),
            retry_after=int(data.get("retryAfter", 1)),
            latency=float(data.get("latency", 1.0)),
        )


class FaultState:
    """The current fault of one cluster, and a way to wait for it to change."""

    def __init__(self) -> None:
        self.fault: Fault | None = None
        self.closing = False
        self._changed = asyncio.Event()

    def set(self, fault: Fault | None) -> None:
        self.fault = fault
        self._wake()

    def close(self) -> None:
        """Release everything held by a blackhole for good (the cluster is stopping)."""
        self.closing = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def blackholed(self) -> bool:
        return self.fault is not None and self.fault.mode == "blackhole" and not self.closing

    async def changed(self) -> None:
        await self._changed.wait()


ErrorRenderer = Callable[[Fault], tuple[list[tuple[bytes, bytes]], bytes]]


def status_error(fault: Fault) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The body and headers a Kubernetes API server sends for ``fault``'s status."""
    if fault.status == 429:
        err = ApiError(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            retry_after=fault.retry_after,
        )
    elif fault.status == 503:
        err = ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request")
    elif fault.status == 504:
        err = ApiError(504, "Timeout", "the server was unable to return a response in the time allotted")
    else:
        err = ApiError(
            fault.status,
            "InternalError",
            'an error on the server ("simulated fault") has prevented the request from succeeding',
        )
    headers = [(b"content-type", b"application/json")]
    if fault.status == 429:
        headers.append((b"retry-after", str(fault.retry_after).encode()))
    return headers, json.dumps(err.status()).encode()


def text_error(fault: Fault) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A load balancer's plain answer for ``fault``'s status."""
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if fault.status == 429:
        headers.append((b"retry-after", str(fault.retry_after).encode()))
    return headers, f"simulated fault: HTTP {fault.status}\n".encode()


class FaultInjector:
    """ASGI middleware applying a cluster's :class:`FaultState` to every HTTP request."""

    def __init__(self, app: ASGIApp, state: FaultState, *, render: ErrorRenderer = status_error) -> None:
        self.app = app
        self.state = state
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.state.blackholed:
            held = await self._hold(receive)
            if held is None:
                return
            receive = held
        fault = self.state.fault
        if fault is not None and fault.mode == "slow" and fault.latency > 0:
            await asyncio.sleep(fault.latency)
            fault = self.state.fault
        exempt = fault is not None and fault.status == 429 and scope.get("path") in PROBE_PATHS
        if fault is not None and fault.mode == "error" and not exempt:
            headers, body = self.render(fault)
            await send({"type": "http.response.start", "status": fault.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, self._gate(send))

    def _gate(self, send: Send) -> Send:
        state = self.state

        async def gated(message: Message) -> None:
            while state.blackholed:
                await state.changed()
            await send(message)

        return gated

    async def _hold(self, receive: Receive) -> Receive | None:
        """Wait while blackholed; the request's messages are kept for the app. None: never answer."""
        buffered: list[Message] = []
        pending: asyncio.Future[Message] | None = None
        try:
            while self.state.blackholed:
                if pending is None:
                    pending = asyncio.ensure_future(receive())
                change = asyncio.ensure_future(self.state.changed())
                waiters: set[asyncio.Future[Any]] = {pending, change}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if not change.done():
                    change.cancel()
                if pending.done():
                    message, pending = pending.result(), None
                    if message.get("type") == "http.disconnect":
                        return None
                    buffered.append(message)
        finally:
            if pending is not None:
                if pending.done() and not pending.cancelled():
                    buffered.append(pending.result())
                else:
                    pending.cancel()
        if self.state.closing or any(m.get("type") == "http.disconnect" for m in buffered):
            return None

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        return replay
