"""The fault middleware, driven with raw ASGI messages (no sockets)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from federation.sim.faults import Fault, FaultInjector, FaultState, Message, text_error


async def hello(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello " + body})


class Call:
    """One request through the middleware; ``disconnect()`` plays a client that gives up."""

    def __init__(self, app: FaultInjector, path: str = "/api/v1/namespaces", body: bytes = b"") -> None:
        self.sent: list[Message] = []
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._inbox.put_nowait({"type": "http.request", "body": body, "more_body": False})
        scope = {"type": "http", "path": path, "method": "GET", "headers": []}
        self.task = asyncio.ensure_future(app(scope, self._inbox.get, self._send))

    async def _send(self, message: Message) -> None:
        self.sent.append(message)

    def disconnect(self) -> None:
        self._inbox.put_nowait({"type": "http.disconnect"})

    @property
    def status(self) -> int | None:
        return self.sent[0]["status"] if self.sent else None

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"]) if self.sent else {}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def run(coro: Any) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout=10)

    return asyncio.run(main())


def test_no_fault_passes_through() -> None:
    async def scenario() -> None:
        call = Call(FaultInjector(hello, FaultState()), body=b"x")
        await call.task
        assert (call.status, call.body) == (200, b"hello x")

    run(scenario())


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "InternalError"), (503, "ServiceUnavailable"), (504, "Timeout"), (429, "TooManyRequests")],
    ids=["500", "503", "504", "429"],
)
def test_error_faults_answer_a_kubernetes_status(status: int, reason: str) -> None:
    async def scenario() -> None:
        state = FaultState()
        state.set(Fault("error", status=status, retry_after=7))
        call = Call(FaultInjector(hello, state))
        await call.task
        assert call.status == status
        body = json.loads(call.body)
        assert (body["kind"], body["code"], body["reason"]) == ("Status", status, reason)
        if status == 429:
            assert call.headers[b"retry-after"] == b"7"
            assert body["details"]["retryAfterSeconds"] == 7
        else:
            assert b"retry-after" not in call.headers

    run(scenario())


def test_429_spares_health_probes_but_500_does_not() -> None:
    async def scenario() -> None:
        state = FaultState()
        app = FaultInjector(hello, state)
        state.set(Fault("error", status=429))
        probe = Call(app, path="/readyz")
        await probe.task
        assert probe.status == 200
        state.set(Fault("error", status=500))
        probe = Call(app, path="/readyz")
        await probe.task
        assert probe.status == 500

    run(scenario())


def test_load_balancer_errors_are_plain_text() -> None:
    async def scenario() -> None:
        state = FaultState()
        state.set(Fault("error", status=502))
        call = Call(FaultInjector(hello, state, render=text_error))
        await call.task
        assert call.status == 502
        assert call.headers[b"content-type"].startswith(b"text/plain")

    run(scenario())


def test_slow_adds_latency() -> None:
    async def scenario() -> None:
        state = FaultState()
        state.set(Fault("slow", latency=0.2))
        loop = asyncio.get_running_loop()
        started = loop.time()
        call = Call(FaultInjector(hello, state))
        await call.task
        assert call.status == 200
        assert loop.time() - started >= 0.2

    run(scenario())


def test_blackhole_holds_requests_until_healed_then_answers_them() -> None:
    async def scenario() -> None:
        state = FaultState()
        state.set(Fault("blackhole"))
        call = Call(FaultInjector(hello, state), body=b"kept")
        await asyncio.sleep(0.1)
        assert not call.sent
        assert not call.task.done()
        state.set(None)
        await call.task
        assert (call.status, call.body) == (200, b"hello kept")

    run(scenario())


def test_blackholed_request_whose_client_gave_up_is_never_answered() -> None:
    async def scenario() -> None:
        state = FaultState()
        state.set(Fault("blackhole"))
        call = Call(FaultInjector(hello, state))
        await asyncio.sleep(0.05)
        call.disconnect()
        await call.task
        assert call.sent == []

    run(scenario())


def test_closing_releases_blackholed_requests_without_an_answer() -> None:
    async def scenario() -> None:
        state = FaultState()
        state.set(Fault("blackhole"))
        call = Call(FaultInjector(hello, state))
        await asyncio.sleep(0.05)
        state.close()
        await call.task
        assert call.sent == []

    run(scenario())


def test_streams_stall_while_blackholed() -> None:
    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": str(i).encode(), "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> None:
        state = FaultState()
        call = Call(FaultInjector(stream, state))
        await asyncio.sleep(0.02)
        state.set(Fault("blackhole"))
        await asyncio.sleep(0.2)
        stalled = len(call.sent)
        assert stalled <= 3
        assert not call.task.done()
        state.set(None)
        await call.task
        assert call.body == b"012"

    run(scenario())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "melt"}, "unknown fault mode"),
        ({"mode": "error", "status": 404}, "error status"),
        ({"mode": "slow", "latency": -1}, "latency"),
        ({"mode": "error", "retry_after": 99999}, "retry-after"),
    ],
    ids=["mode", "status", "latency", "retry-after"],
)
def test_faults_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault(**kwargs)


def test_fault_round_trips_through_its_description() -> None:
    for fault in (Fault("down"), Fault("error", status=429, retry_after=3), Fault("slow", latency=0.5)):
        again = Fault.from_dict(fault.describe())
        assert again.describe() == fault.describe()
