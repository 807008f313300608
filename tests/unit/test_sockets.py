"""The one way both servers bind: TCP named (so asyncio turns Nagle off), the port reusable at once."""

from __future__ import annotations

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


def test_a_closed_port_with_a_connection_in_time_wait_is_bound_again() -> None:
    with bind_tcp("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        first.listen(1)
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        accepted, _ = first.accept()
        accepted.close()  # the server closes first: its side of the connection waits in TIME_WAIT
        client.close()
    with bind_tcp("127.0.0.1", port) as again:
        assert again.getsockname()[1] == port


def test_a_port_in_use_is_refused() -> None:
    with bind_tcp("127.0.0.1", 0) as held:
        held.listen(1)
        with pytest.raises(OSError, match="in use"):
            bind_tcp("127.0.0.1", held.getsockname()[1])
