"""Loopback listeners that an outage takes down and brings back on the same port."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from federation.sim.listening import Listener, server_config


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


def run(coro: Any) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout=10)

    return asyncio.run(main())


def test_suspend_refuses_and_resume_serves_the_same_port() -> None:
    async def scenario() -> None:
        listener = Listener(server_config(hello))
        port = await listener.start()
        try:
            assert b"hello" in await get(port)
            await listener.suspend()
            assert not listener.serving
            assert await refused(port)
            await listener.resume()
            assert listener.port == port
            assert b"hello" in await get(port)
        finally:
            await listener.close()
        assert await refused(port)

    run(scenario())


def test_suspend_cuts_open_connections() -> None:
    async def scenario() -> None:
        listener = Listener(server_config(hello))
        port = await listener.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readuntil(b"hello")
            await listener.suspend()
            await reader.read()
            assert reader.at_eof()  # the server end is gone
            writer.close()
        finally:
            await listener.close()

    run(scenario())


def test_a_listener_started_suspended_holds_its_port() -> None:
    async def scenario() -> None:
        listener = Listener(server_config(hello))
        port = await listener.start(serving=False)
        try:
            assert await refused(port)
            with socket.socket() as other:  # an ordinary program cannot take the port meanwhile
                try:
                    other.bind(("127.0.0.1", port))
                    taken = False
                except OSError:
                    taken = True
            assert taken
            await listener.resume()
            assert b"hello" in await get(port)
        finally:
            await listener.close()

    run(scenario())


def test_accepted_connections_disable_nagle() -> None:
    async def scenario() -> None:
        listener = Listener(server_config(hello))
        port = await listener.start()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if listener.state.connections:
                    break
                await asyncio.sleep(0.01)
            (conn,) = listener.state.connections
            sock = conn.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            writer.close()
            await writer.wait_closed()
        finally:
            await listener.close()

    run(scenario())
