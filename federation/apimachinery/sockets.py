"""Bound TCP sockets for the servers that speak the Kubernetes API, made one way.

The federation API server binds its one listening socket before it starts (and shares it with its
worker processes); the simulator binds each cluster's port and keeps it reserved, unlistening, while
an outage is simulated. Both need the same socket, made by :func:`bind_tcp`:

* ``IPPROTO_TCP`` named explicitly: asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on
  sockets whose ``proto`` says TCP, and accepted sockets inherit it. With proto 0, a response written
  in two parts waits for the client's delayed ACK: about 40 ms per request on a keep-alive connection.
* ``SO_REUSEADDR``: a port just closed (its connections in TIME_WAIT) can be bound again at once, so
  a restarted server or a healed simulated cluster gets its port back.
* IPv6 when the address has a colon; the socket is closed if binding fails.

It does not listen: the caller chooses when, and with which backlog.

Both also keep an idle keep-alive connection as long as a Kubernetes API server does
(:data:`IDLE_TIMEOUT`), not uvicorn's 5 s: clients pool connections for 90 s (Go's transport,
kubectl), and a server that closes one after 5 s races the client that takes it up again: its next
request is lost with "Remote end closed connection without response".
"""

from __future__ import annotations

import socket
from typing import Final

IDLE_TIMEOUT: Final = 90
"""Seconds an idle keep-alive connection stays open: kube-apiserver's ``IdleTimeout`` (90 s, which
matches Go's ``http.DefaultTransport``)."""


def bind_tcp(address: str, port: int) -> socket.socket:
    """A TCP socket bound to ``address``:``port`` (0: any free port), not yet listening."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    return sock
