"""The one way both servers bind: TCP named (so asyncio turns Nagle off), the port reusable at once."""

from __future__ import annotations

import asyncio
import socket

import pytest

from federation.apimachinery import bind_tcp


@pytest.mark.parametrize(("address", "family"), [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)])
def test_binds_any_free_port_without_listening(address: str, family: socket.AddressFamily) -> None:
    with bind_tcp(address, 0) as sock:
        port = sock.getsockname()[1]
        assert port > 0
        assert (sock.family, sock.proto) == (family, socket.IPPROTO_TCP)
        with pytest.raises(ConnectionRefusedError), socket.create_connection((address, port), timeout=5):
            pass


def test_asyncio_serves_it_without_nagle_and_the_port_is_reusable_at_once() -> None:
    """Accepted connections have TCP_NODELAY (no 40 ms wait for a delayed ACK); SO_REUSEADDR lets
    a restarted server bind its port while old connections sit in TIME_WAIT."""

    async def scenario() -> tuple[int, int]:
        accepted: asyncio.Queue[int] = asyncio.Queue()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.put_nowait(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        sock = bind_tcp("127.0.0.1", 0)
        reuse = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        sock.listen(8)
        server = await asyncio.start_server(on_connect, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
            nodelay = await asyncio.wait_for(accepted.get(), timeout=10)
            writer.close()
        return reuse, nodelay

    reuse, nodelay = asyncio.run(scenario())
    assert reuse != 0
    assert nodelay != 0


def test_a_port_in_use_is_refused() -> None:
    with bind_tcp("127.0.0.1", 0) as held:
        held.listen(1)
        with pytest.raises(OSError, match="in use"):
            bind_tcp("127.0.0.1", held.getsockname()[1])
