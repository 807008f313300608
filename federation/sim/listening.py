"""Loopback ports that a simulated outage can take down and bring back, on the same port number.

Every address of a simulated cluster (its API server, each regional load-balancer address, the
simulator's control API) is a :class:`Listener`: an ``asyncio`` server on ``127.0.0.1`` speaking
HTTP/1.1 through uvicorn's h11 protocol, many of them on one event loop (``uvicorn.Server.serve``
would install signal handlers and run one server per loop, so it is not used).

Guarantees:

* :meth:`Listener.suspend` makes the port refuse connections at once, as a crashed server does: the
  listening socket is closed and every open connection is aborted. The port stays reserved by a
  bound socket that does not listen (the kernel answers connects with RST, i.e. "connection
  refused") and that ordinary binds cannot take, so :meth:`Listener.resume` serves the very same
  port again and kubeconfigs and ``status.loadBalancer`` stay true across an outage;
* :meth:`Listener.close` releases the port for good, aborts connections and cancels their requests;
* nothing here sleeps except the bounded retries of a re-bind after a close (at most one second).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from typing import Any, Literal

from uvicorn import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from federation.apimachinery import IDLE_TIMEOUT, bind_tcp

HOST = "127.0.0.1"
BACKLOG = 512
_REBIND_ATTEMPTS = 100
_REBIND_PAUSE = 0.01


def _reserve(port: int) -> socket.socket:
    sock = bind_tcp(HOST, port)
    sock.setblocking(False)
    return sock


def server_config(app: Any, *, lifespan: Literal["on", "off"] = "off") -> Config:
    """A loaded uvicorn config for ``app`` that leaves global logging and signals alone."""
    config = Config(
        app,
        http="h11",
        ws="none",
        lifespan=lifespan,
        interface="asgi3",
        proxy_headers=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=IDLE_TIMEOUT,
    )
    config.load()
    return config


class Listener:
    def __init__(
        self, config: Config, *, tls: ssl.SSLContext | None = None, app_state: dict[str, Any] | None = None
    ) -> None:
        self.config = config
        self.tls = tls
        self.state = ServerState()
        self._app_state = app_state if app_state is not None else {}
        self._server: asyncio.Server | None = None
        self._reserved: socket.socket | None = None
        self.port = 0

    @property
    def serving(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    def _protocol(self) -> asyncio.Protocol:
        return H11Protocol(
            config=self.config,
            server_state=self.state,
            app_state=self._app_state,
            _loop=asyncio.get_running_loop(),
        )

    async def start(self, *, port: int = 0, serving: bool = True) -> int:
        """Take ``port`` (0: any free one) and, when ``serving``, start accepting; returns the port."""
        if self._reserved is not None or self._server is not None:
            raise RuntimeError("listener already started")
        self._reserved = _reserve(port)
        self.port = int(self._reserved.getsockname()[1])
        if serving:
            await self.resume()
        return self.port

    async def resume(self) -> None:
        """Accept connections again on the reserved port (no-op when already serving)."""
        if self._server is not None:
            return
        if self._reserved is None:
            self._reserved = await self._rebind()
        sock, self._reserved = self._reserved, None
        sock.listen(BACKLOG)
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self._protocol, sock=sock, ssl=self.tls, backlog=BACKLOG
            )
        except BaseException:
            sock.close()
            raise

    async def suspend(self) -> None:
        """Refuse connections from now on, abort the open ones, keep the port (no-op when suspended)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        self._abort_connections()
        self._reserved = await self._rebind()

    async def close(self) -> None:
        """Release the port for good and end every request in flight."""
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        self._abort_connections()
        tasks = list(self.state.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def _abort_connections(self) -> None:
        for conn in list(self.state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()

    async def _rebind(self) -> socket.socket:
        # The kernel may still count the old listening socket for a moment; the retry is bounded.
        for _ in range(_REBIND_ATTEMPTS):
            try:
                return _reserve(self.port)
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
            await asyncio.sleep(_REBIND_PAUSE)
        return _reserve(self.port)


@contextlib.asynccontextmanager
async def listening(config: Config, *, tls: ssl.SSLContext | None = None) -> Any:
    """A started :class:`Listener` for the duration of a block (tests and small tools)."""
    listener = Listener(config, tls=tls)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.close()
