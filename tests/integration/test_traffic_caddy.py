"""The embedded global load balancer, end to end: a real Caddy in front of real loopback HTTP servers.

Each region is a small threaded HTTP server answering with its name in ``X-Sim-Cluster``, as the
simulator's regional addresses do; a black-holed region accepts connections and never answers. The
client is ``http.client`` on one keep-alive connection, which retries nothing, so every failed request
and every connection the balancer closes shows. Every loop is bounded in count and time; every target
is on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from federation.settings import TrafficSettings
from federation.traffic import CaddyProvider, NoProvider, Route, Upstream, make_provider

pytestmark = pytest.mark.anyio

CLIENT_TIMEOUT = 5.0
"""The client's patience: a request that takes this long has failed as the user sees it."""


class Region:
    """A regional address on loopback answering ``200 <name>`` with ``X-Sim-Cluster: <name>``."""

    def __init__(self, name: str) -> None:
        region = name

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = region.encode()
                self.send_response(200)
                self.send_header("X-Sim-Cluster", region)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        open_connections = self._connections = set[socket.socket]()

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                open_connections.add(request)
                super().process_request(request, client_address)

        self.name = name
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self.stopped = False

    def upstream(self, weight: int) -> Upstream:
        return Upstream(cluster=self.name, host="127.0.0.1", port=self.port, weight=weight)

    def stop(self) -> None:
        """Down: the port refuses connections from now on, and the open ones (the balancer's pooled
        keep-alive connections) are reset, as when a region's load balancer goes away."""
        if not self.stopped:
            self.stopped = True
            self.server.shutdown()
            self.server.server_close()
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._thread.join(timeout=5)


class BlackHole:
    """A region that accepts connections (the kernel completes them) and never answers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.port = int(self._sock.getsockname()[1])

    def upstream(self, weight: int) -> Upstream:
        return Upstream(cluster=self.name, host="127.0.0.1", port=self.port, weight=weight)

    def close(self) -> None:
        self._sock.close()


@dataclass
class Tally:
    """What a client saw: answers by region, failures, connections opened, latencies."""

    regions: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    connections: int = 0
    latencies: list[float] = field(default_factory=list)
    last: list[str] = field(default_factory=list)

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def send(
    port: int,
    *,
    count: int,
    within: float = 20.0,
    rate: float | None = None,
    keep_going: Callable[[], bool] | None = None,
) -> Tally:
    """GET / ``count`` times (or while ``keep_going()``, at most ``count`` and ``within`` s; ``rate``
    per second at most) on one keep-alive connection, opening a new one only after a failure or a
    close."""
    tally = Tally()
    conn: http.client.HTTPConnection | None = None
    start = time.monotonic()
    deadline = start + within
    for sent in range(count):
        if time.monotonic() > deadline or (keep_going is not None and not keep_going()):
            break
        if rate is not None and (pause := start + sent / rate - time.monotonic()) > 0:
            time.sleep(pause)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
            tally.connections += 1
        started = time.monotonic()
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as err:
            tally.failures.append(repr(err))
            conn.close()
            conn = None
            continue
        tally.latencies.append(time.monotonic() - started)
        region = response.getheader("X-Sim-Cluster") or f"status {response.status}"
        tally.regions[region] += 1
        tally.last = [*tally.last[-19:], region]
        if response.status != 200:
            tally.failures.append(f"status {response.status}")
        if response.will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return tally


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def route(port: int, *upstreams: Upstream, name: str = "default/web") -> Route:
    return Route(name=name, listen_port=port, upstreams=upstreams)


@pytest.fixture
def regions() -> Iterator[Callable[[str], Region]]:
    made: list[Region] = []

    def make(name: str) -> Region:
        made.append(Region(name))
        return made[-1]

    yield make
    for region in made:
        region.stop()


@pytest.fixture
async def caddy(tmp_path: Path) -> AsyncIterator[CaddyProvider]:
    provider = make_provider(TrafficSettings(), work_dir=tmp_path / "caddy")
    assert isinstance(provider, CaddyProvider)
    await provider.start()
    try:
        yield provider
    finally:
        pids = [p.pid for p in provider.processes if p.pid is not None]
        await provider.stop()
        assert not [pid for pid in pids if psutil.pid_exists(pid)], "caddy left running after stop"


async def test_weights_split_requests(caddy: CaddyProvider, regions: Callable[[str], Region]) -> None:
    taiwan, tokyo = regions("taiwan"), regions("tokyo")
    port = free_port()
    await caddy.apply([route(port, taiwan.upstream(2), tokyo.upstream(1))])

    tally = await asyncio.to_thread(send, port, count=300)

    assert tally.failures == []
    assert tally.connections == 1
    assert 190 <= tally.regions["taiwan"] <= 210, tally.regions
    assert tally.regions["taiwan"] + tally.regions["tokyo"] == 300
    assert caddy.healthy()


async def test_a_weight_change_is_live_and_keeps_connections(
    caddy: CaddyProvider, regions: Callable[[str], Region]
) -> None:
    taiwan, tokyo = regions("taiwan"), regions("tokyo")
    port = free_port()
    await caddy.apply([route(port, taiwan.upstream(1), tokyo.upstream(1))])
    sending = threading.Event()
    sending.set()
    client = asyncio.create_task(
        asyncio.to_thread(send, port, count=20_000, within=15, keep_going=sending.is_set)
    )
    try:
        for weights in [(2, 1), (1, 3), (1, 1), (0, 1)]:
            await asyncio.sleep(0.25)
            await caddy.apply([route(port, taiwan.upstream(weights[0]), tokyo.upstream(weights[1]))])
        await asyncio.sleep(0.5)
    finally:
        sending.clear()
        tally = await client

    assert tally.failures == []
    assert tally.connections == 1, "a weight change closed the client's connection"
    assert len(tally.latencies) > 200
    assert set(tally.last) == {"tokyo"}, "taiwan still served after its weight went to 0"


async def test_adding_a_route_leaves_the_others_serving(
    caddy: CaddyProvider, regions: Callable[[str], Region]
) -> None:
    """Adding or removing a route reloads the edge: the other routes keep answering; a keep-alive
    connection may be closed (Caddy finishes the request in flight, then closes), so the client here
    reconnects after a close, and no request fails."""
    taiwan = regions("taiwan")
    web, api = free_port(), free_port()
    first = route(web, taiwan.upstream(1))
    await caddy.apply([first])
    sending = threading.Event()
    sending.set()
    client = asyncio.create_task(
        asyncio.to_thread(send, web, count=20_000, within=15, keep_going=sending.is_set)
    )
    try:
        await asyncio.sleep(0.3)
        await caddy.apply([first, route(api, taiwan.upstream(1), name="default/api")])
        added = await asyncio.to_thread(send, api, count=20)
        await asyncio.sleep(0.3)
        await caddy.apply([first])
        await asyncio.sleep(0.3)
    finally:
        sending.clear()
        tally = await client

    assert added.failures == []
    assert added.regions == {"taiwan": 20}
    assert [f for f in tally.failures if "status" in f] == []
    assert tally.regions["taiwan"] > 100
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", api), timeout=1).close()


async def test_a_refused_region_is_retried_elsewhere(
    caddy: CaddyProvider, regions: Callable[[str], Region]
) -> None:
    taiwan, tokyo = regions("taiwan"), regions("tokyo")
    port = free_port()
    await caddy.apply([route(port, taiwan.upstream(1), tokyo.upstream(1))])
    warm = await asyncio.to_thread(send, port, count=20)
    assert warm.regions == {"taiwan": 10, "tokyo": 10}
    taiwan.stop()

    tally = await asyncio.to_thread(send, port, count=200, rate=100)

    assert tally.failures == []
    assert tally.regions == {"tokyo": 200}
    assert max(tally.latencies) < 1.0, f"p99 {tally.p(0.99):.3f} s, max {max(tally.latencies):.3f} s"


async def test_a_black_holed_region_does_not_hold_requests(
    caddy: CaddyProvider, regions: Callable[[str], Region]
) -> None:
    """Over 3 s the hole is tried again after each fail_duration (2 s): the requests that meet it
    wait one response-header timeout (0.4 s) and are answered by tokyo; none waits for the client's
    own timeout (5 s)."""
    tokyo = regions("tokyo")
    hole = BlackHole("taiwan")
    port = free_port()
    try:
        await caddy.apply([route(port, hole.upstream(1), tokyo.upstream(1))])
        tally = await asyncio.to_thread(send, port, count=300, rate=100)
    finally:
        hole.close()

    assert tally.failures == []
    assert tally.regions == {"tokyo": 300}
    slow = [t for t in tally.latencies if t > 0.3]
    assert slow, "no request met the black hole: the test proves nothing"
    assert max(tally.latencies) < 1.0, f"p99 {tally.p(0.99):.3f} s, max {max(tally.latencies):.3f} s"


async def test_taking_out_a_black_holed_region_fails_none_of_its_requests_in_flight(
    caddy: CaddyProvider, regions: Callable[[str], Region]
) -> None:
    """The weight-0 change that takes a black-holed region out reloads the balancer while requests
    wait on the hole. Caddy cancels the old configuration's context at once on a reload (it does not
    wait for its grace period), and a request whose try then times out is not retried: it was a
    ``504``. The provider now lets those requests time out and be retried first. Here the change is
    applied while the balancer's own record shows requests in flight to the hole."""
    tokyo = regions("tokyo")
    hole = BlackHole("taiwan")
    port = free_port()
    balancer = caddy.processes[1]
    sending = threading.Event()
    sending.set()
    try:
        await caddy.apply([route(port, hole.upstream(1), tokyo.upstream(1))])
        clients = [
            asyncio.create_task(
                asyncio.to_thread(send, port, count=2_000, within=10, rate=50, keep_going=sending.is_set)
            )
            for _ in range(4)  # the default executor keeps a thread for the admin calls
        ]
        try:
            hole_dial = hole.upstream(1).dial
            in_flight, listed = 0, []
            deadline = time.monotonic() + 5
            while not in_flight:
                assert time.monotonic() < deadline, f"no request waited on the hole within 5 s: {listed}"
                listed = await balancer.get("/reverse_proxy/upstreams")
                in_flight = sum(int(u["num_requests"]) for u in listed if u["address"] == hole_dial)
                await asyncio.sleep(0.01)
            await caddy.apply([route(port, hole.upstream(0), tokyo.upstream(1))])
            await asyncio.sleep(1.0)
        finally:
            sending.clear()
            tallies = await asyncio.gather(*clients)
    finally:
        hole.close()

    failures = [f for tally in tallies for f in tally.failures]
    assert failures == [], failures
    assert sum(tally.regions["tokyo"] for tally in tallies) > 100
    assert max(max(tally.latencies) for tally in tallies) < 1.0


async def test_weight_changes_while_a_region_refuses_fail_no_request(
    caddy: CaddyProvider, regions: Callable[[str], Region]
) -> None:
    """Every weight change reloads the balancer, and Caddy cancels the old configuration's context
    at once, forgetting its passive failure marks: the refusing region is tried again after each
    change. A request whose try on it fails just then must still be retried on tokyo. With a pause
    between tries (``try_interval``) it was not: the pause ends on the cancelled context, and the
    client got a ``502`` (about one change in two in the controllers' test; 6-10 of ~800 requests
    here)."""
    taiwan, tokyo = regions("taiwan"), regions("tokyo")
    port = free_port()
    await caddy.apply([route(port, taiwan.upstream(1), tokyo.upstream(1))])
    taiwan.stop()
    sending = threading.Event()
    sending.set()
    clients = [
        asyncio.create_task(
            asyncio.to_thread(send, port, count=2_000, within=10, rate=100, keep_going=sending.is_set)
        )
        for _ in range(2)
    ]
    try:
        for change in range(40):
            await asyncio.sleep(0.05)
            await caddy.apply([route(port, taiwan.upstream(1), tokyo.upstream(1 + change % 2))])
    finally:
        sending.clear()
        tallies = await asyncio.gather(*clients)

    failures = [f for tally in tallies for f in tally.failures]
    assert failures == [], failures
    assert sum(tally.regions["tokyo"] for tally in tallies) > 300


async def test_a_killed_caddy_comes_back_with_the_current_weights(
    caddy: CaddyProvider, regions: Callable[[str], Region]
) -> None:
    taiwan, tokyo = regions("taiwan"), regions("tokyo")
    port = free_port()
    await caddy.apply([route(port, taiwan.upstream(1), tokyo.upstream(1))])
    await caddy.apply([route(port, taiwan.upstream(0), tokyo.upstream(1))])

    for process in caddy.processes:
        killed = process.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not (process.pid not in (None, killed) and caddy.healthy()):
            assert time.monotonic() < deadline, f"caddy {process.role} not back within 5 s"
            await asyncio.sleep(0.05)
        assert process.restarts == 1

        tally = await asyncio.to_thread(send, port, count=30)
        assert tally.failures == [], process.role
        assert tally.regions == {"tokyo": 30}, process.role


def _non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


async def test_the_admin_api_is_on_loopback_only(
    caddy: CaddyProvider, regions: Callable[[str], Region]
) -> None:
    taiwan = regions("taiwan")
    port = free_port()
    await caddy.apply([route(port, taiwan.upstream(1))])

    listening: dict[str, set[str]] = {}
    for process in caddy.processes:
        assert process.pid is not None
        connections = psutil.Process(process.pid).net_connections(kind="inet")
        listening[process.role] = {
            f"{c.laddr.ip}:{c.laddr.port}" for c in connections if c.status == psutil.CONN_LISTEN
        }
        assert f"127.0.0.1:{process.admin_port}" in listening[process.role]
    everything = listening["edge"] | listening["balancer"]
    assert all(address.startswith("127.0.0.1:") for address in everything), everything
    assert f"127.0.0.1:{port}" in listening["edge"]

    outside = _non_loopback_ipv4()
    if outside is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try the admin API on")
    for process in caddy.processes:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((outside, process.admin_port), timeout=1).close()


async def test_provider_none_programs_nothing(tmp_path: Path, regions: Callable[[str], Region]) -> None:
    taiwan = regions("taiwan")
    port = free_port()
    provider = make_provider(TrafficSettings(traffic_provider="none"), work_dir=tmp_path)
    assert isinstance(provider, NoProvider)
    assert provider.NAME == "none"
    before = psutil.Process().children(recursive=True)

    await provider.start()
    await provider.apply([route(port, taiwan.upstream(1))])

    assert provider.routes == (route(port, taiwan.upstream(1)),)
    assert provider.healthy()
    assert provider.address == ""
    assert psutil.Process().children(recursive=True) == before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    await provider.stop()


_HOLDER = """
import asyncio, sys
from pathlib import Path
from federation.settings import TrafficSettings
from federation.traffic import make_provider

async def main():
    provider = make_provider(TrafficSettings(), work_dir=Path(sys.argv[1]))
    await provider.start()
    print(" ".join(str(p.pid) for p in provider.processes), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_killed_federation_leaves_no_caddy(tmp_path: Path) -> None:
    """The process that runs the provider dies by SIGKILL (no ``stop``): its Caddys go with it."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), 15)
        pids = [int(pid) for pid in line.split()]
        assert len(pids) == 2
        assert all(psutil.pid_exists(pid) for pid in pids)
    finally:
        holder.kill()
        await holder.wait()
    deadline = time.monotonic() + 8
    while any(_running(pid) for pid in pids):
        assert time.monotonic() < deadline, "caddy outlived the process that started it"
        await asyncio.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
