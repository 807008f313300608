"""Benchmark of the federation API server (issue 3): ``make bench`` or ``python -m tests.bench.api``.

It prints figures; it asserts nothing. Everything runs on this machine, on loopback:

* its own embedded Postgres in a temporary folder, a ``federation`` database migrated with
  :func:`federation.store.migrate.upgrade`, and the real server, ``fedctl up --port 0`` as a
  subprocess (:func:`tests.servers.start_federation`), over HTTPS with the CA it writes;
* load generators in separate processes (``--clients``), each one asyncio loop speaking HTTP/1.1
  over keep-alive TLS connections with a minimal hand-written client (httpx costs several times
  more CPU per request, which on two cores is taken from the server);
* phases, each bounded in request count *and* time:

  1. ``client-ceiling``: closed-loop ``GET /healthz`` (no auth, no database) at ``--concurrency``,
     which shows how many requests per second the client and the server's HTTP layer can carry;
  2. ``create@RATE``: open-loop ReplicaSet creates at a fixed arrival rate (``--rate``, default 200/s)
     for ``--rate-seconds``; latency is measured from each request's *scheduled* time, so a
     stalled server cannot hide behind a stalled client (no coordinated omission);
  3. ``create-max``: closed-loop creates at ``--concurrency``;
  4. ``get-max``: closed-loop gets of one existing ReplicaSet at ``--concurrency``;
  5. ``get-max (wrk)``: the same with ``wrk`` (a C load generator) when it is installed, as a
     second opinion on whether the Python client was the bottleneck;
  6. ``pgbench insert``: pgbench at the same concurrency against the same Postgres, one single-row
     INSERT per transaction into a table shaped like ``objects``, so the figure of the issue,
     creates/s ÷ pgbench TPS, is measured in the same run.

For each phase it prints the achieved rate, latency percentiles, and CPU time per request spent by
the clients, the server process and Postgres (read from ``/proc``), which tells where the time goes.
``--profile DIR`` also records the server with py-spy (when installed) during the closed-loop phases.
Results are described in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import platform
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMESPACE = "bench"
GET_NAME = "bench-get"
RS_PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# -- statistics (pure) -------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``ordered`` (sorted ascending).

    Nearest rank never interpolates: the answer is always one of the measured values, and p100 is
    the maximum. An empty sample has no percentile (NaN).
    """
    if not 0 < q <= 100:
        raise ValueError("q must be in (0, 100]")
    if not ordered:
        return math.nan
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class Summary:
    """What one phase measured. Latencies are in seconds."""

    requests: int
    errors: int
    seconds: float
    p50: float
    p90: float
    p99: float
    max: float

    @property
    def rate(self) -> float:
        """Successful requests per second over the phase."""
        ok = self.requests - self.errors
        return ok / self.seconds if self.seconds > 0 else math.nan


def summarize(latencies: Sequence[float], *, errors: int, seconds: float) -> Summary:
    """Summary of one phase: ``latencies`` of every request (successful or not)."""
    ordered = sorted(latencies)
    return Summary(
        requests=len(ordered),
        errors=errors,
        seconds=seconds,
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1] if ordered else math.nan,
    )


def arrival_times(rate: float, count: int) -> list[float]:
    """Offsets (seconds from the start) of ``count`` requests arriving at a fixed ``rate`` per second."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return [i / rate for i in range(count)]


# -- a minimal HTTP/1.1 client (keep-alive, TLS) -----------------------------------------------------


class HttpError(Exception):
    """The server answered something this client does not understand, or hung up."""


class Http1:
    """One keep-alive HTTP/1.1 connection; requests are pre-encoded bytes, one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, tls: ssl.SSLContext | None) -> Http1:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls else None, limit=1 << 20
        )
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise HttpError("connection closed before a response") from exc
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lower = name.strip().lower()
            if lower == b"content-length":
                length = int(value.strip())
            elif lower == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            return status, await self._chunked()
        if length < 0:
            raise HttpError("response without Content-Length on a keep-alive connection")
        return status, await self.reader.readexactly(length)

    async def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(body)
            body += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


def replicaset(name: str) -> dict[str, Any]:
    """A realistic ReplicaSet manifest (as ``kubectl create -f`` would send it)."""
    labels = {"app": "bench", "tier": "web", "app.kubernetes.io/part-of": "federation-bench"}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": {
                "federation.kubernetes.io/replica-set-preferences": json.dumps(
                    {"rebalance": True, "clusters": {"*": {"weight": 1}}}
                )
            },
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "bench", "tier": "web"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "64Mi"},
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                            },
                            "env": [{"name": "REGION", "value": "any"}],
                        }
                    ]
                },
            },
        },
    }


def _raw_request(method: str, path: str, host: str, token: str | None, body: bytes | None = None) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Accept: application/json", "User-Agent: fed-bench"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


# -- the load generator (runs in its own process) ----------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What one load-generator process does. Picklable: it crosses into a spawned process."""

    operation: str  # "healthz" | "get" | "create"
    host: str
    port: int
    ca_file: str
    token: str
    name_prefix: str
    max_requests: int
    seconds: float
    start_at: float  # time.time() at which to start, so that several processes start together
    concurrency: int = 1  # closed loop: connections each doing one request after the other
    rate: float = 0.0  # open loop when > 0: requests per second from this process
    max_connections: int = 64  # open loop: connections opened at most (more requests wait)
    expect: int = 200


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str = ""
    started: float = 0.0  # time.time()
    ended: float = 0.0
    cpu_seconds: float = 0.0  # this process's user + system time during the load
    send_lag_max: float = 0.0  # open loop: how late the client sent its most late request

    def record(self, status: int, latency: float, expect: int, body: bytes) -> None:
        self.latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status != expect:
            self.errors += 1
            if not self.first_error:
                self.first_error = f"{status}: {body[:300]!r}"


def run_load(load: Load) -> LoadResult:
    """Entry point of a load-generator process."""
    return asyncio.run(_run_load(load))


def _request_maker(load: Load) -> Any:
    hostport = f"{load.host}:{load.port}"
    if load.operation == "healthz":
        raw = _raw_request("GET", "/healthz", hostport, None)
        return lambda _i: raw
    if load.operation == "get":
        raw = _raw_request("GET", f"{RS_PATH}/{GET_NAME}", hostport, load.token)
        return lambda _i: raw
    if load.operation == "create":
        marker = "@@NAME@@"
        template = json.dumps(replicaset(marker), separators=(",", ":"))
        assert template.count(marker) == 1
        before, after = template.split(marker)

        def make(i: int) -> bytes:
            body = f"{before}{load.name_prefix}-{i}{after}".encode()
            return _raw_request("POST", RS_PATH, hostport, load.token, body)

        return make
    raise ValueError(f"unknown operation {load.operation!r}")


async def _run_load(load: Load) -> LoadResult:
    tls = ssl.create_default_context(cafile=load.ca_file)
    make = _request_maker(load)
    result = LoadResult()
    warm = min(load.concurrency if load.rate <= 0 else 8, load.max_connections)
    conns = [await Http1.open(load.host, load.port, tls) for _ in range(warm)]
    await asyncio.sleep(max(0.0, load.start_at - time.time()))
    cpu0 = time.process_time()
    result.started = time.time()
    try:
        if load.rate > 0:
            await _open_loop(load, make, conns, tls, result)
        else:
            await _closed_loop(load, make, conns, result)
    finally:
        result.ended = time.time()
        result.cpu_seconds = time.process_time() - cpu0
        for conn in conns:
            await conn.close()
    return result


async def _closed_loop(load: Load, make: Any, conns: list[Http1], result: LoadResult) -> None:
    deadline = time.perf_counter() + load.seconds
    issued = 0

    async def worker(conn: Http1) -> None:
        nonlocal issued
        while issued < load.max_requests and time.perf_counter() < deadline:
            i = issued
            issued += 1
            raw = make(i)
            t0 = time.perf_counter()
            status, body = await conn.request(raw)
            result.record(status, time.perf_counter() - t0, load.expect, body)

    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in conns)), load.seconds + 30)


async def _open_loop(
    load: Load, make: Any, conns: list[Http1], tls: ssl.SSLContext, result: LoadResult
) -> None:
    idle = list(conns)
    opened = len(conns)
    freed = asyncio.Condition()
    count = min(load.max_requests, math.floor(load.rate * load.seconds))
    offsets = arrival_times(load.rate, count)
    t0 = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int, scheduled: float) -> None:
        nonlocal opened
        async with freed:
            while not idle and opened >= load.max_connections:
                await freed.wait()
            if idle:
                conn = idle.pop()
            else:
                opened += 1
                conn = None
        if conn is None:  # a new connection: its handshake counts in this request's latency
            conn = await Http1.open(load.host, load.port, tls)
            conns.append(conn)
        result.send_lag_max = max(result.send_lag_max, time.perf_counter() - scheduled)
        status, body = await conn.request(make(i))
        result.record(status, time.perf_counter() - scheduled, load.expect, body)
        async with freed:
            idle.append(conn)
            freed.notify()

    for i, offset in enumerate(offsets):
        scheduled = t0 + offset
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    # Requests still in flight get a bounded time to finish; the rest count as errors.
    done, pending = await asyncio.wait(tasks, timeout=30)
    for task in pending:
        task.cancel()
        result.errors += 1
    for task in done:
        if task.exception() is not None and not result.first_error:
            result.first_error = repr(task.exception())


# -- CPU accounting from /proc -----------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / CLOCK_TICKS


def process_tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and all its live descendants (and their reaped children)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _proc_stat(int(entry))
            if found is not None:
                parents[int(entry)], cpu[int(entry)] = found
    total = 0.0
    for pid, seconds in cpu.items():
        p = pid
        while p > 1:
            if p == root:
                total += seconds
                break
            p = parents.get(p, 0)
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU seconds used by the server and Postgres (and the whole machine) over one phase."""

    server_pid: int
    postgres_pid: int
    start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def sample(self) -> tuple[float, float, float, float]:
        busy, total = machine_busy()
        return process_tree_cpu(self.server_pid), process_tree_cpu(self.postgres_pid), busy, total

    def begin(self) -> None:
        self.start = self.sample()

    def end(self) -> tuple[float, float, float]:
        """(server seconds, postgres seconds, machine busy fraction of all cores)."""
        s1, p1, b1, t1 = self.sample()
        s0, p0, b0, t0 = self.start
        return s1 - s0, p1 - p0, (b1 - b0) / (t1 - t0) if t1 > t0 else math.nan


# -- results -----------------------------------------------------------------------------------------


@dataclass
class Row:
    phase: str
    concurrency: str
    summary: Summary
    client_cpu: float = math.nan  # seconds, all load-generator processes
    server_cpu: float = math.nan
    postgres_cpu: float = math.nan
    busy: float = math.nan
    note: str = ""

    def per_request_ms(self, seconds: float) -> float:
        n = self.summary.requests
        return seconds / n * 1000 if n else math.nan


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def _num(value: float, fmt: str = ".0f") -> str:
    return "-" if math.isnan(value) else format(value, fmt)


def table(rows: Sequence[Row]) -> str:
    header = (
        "phase",
        "conc",
        "reqs",
        "err",
        "secs",
        "rate/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "cpu ms/req client",
        "server",
        "postgres",
        "busy %",
    )
    body = []
    for r in rows:
        s = r.summary
        body.append(
            (
                r.phase,
                r.concurrency,
                str(s.requests),
                str(s.errors),
                f"{s.seconds:.1f}",
                _num(s.rate),
                _ms(s.p50),
                _ms(s.p90),
                _ms(s.p99),
                _ms(s.max),
                _num(r.per_request_ms(r.client_cpu), ".2f"),
                _num(r.per_request_ms(r.server_cpu), ".2f"),
                _num(r.per_request_ms(r.postgres_cpu), ".2f"),
                _num(r.busy * 100),
            )
        )
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    for b in body:
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths)))
        )
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Environment:
    host: str
    port: int
    ca_file: str
    token: str
    server_pid: int
    postgres_pid: int
    postgres_url: str  # libpq URL of the server's maintenance database
    bin_dir: Path
    tmp: Path


class Bench:
    def __init__(self, env: Environment, args: argparse.Namespace) -> None:
        self.env = env
        self.args = args
        self.rows: list[Row] = []
        self.meter = CpuMeter(env.server_pid, env.postgres_pid)
        context = multiprocessing.get_context("spawn")
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=args.clients, mp_context=context)
        self.sequence = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def load(
        self,
        phase: str,
        operation: str,
        *,
        concurrency: int,
        max_requests: int,
        seconds: float,
        rate: float = 0.0,
        expect: int = 200,
        record: bool = True,
        profile: str | None = None,
    ) -> Row:
        """Run one phase over ``--clients`` processes (an open-loop phase uses one) and record it."""
        clients = 1 if rate > 0 else max(1, min(self.args.clients, concurrency))
        start_at = time.time() + 1.0
        self.sequence += 1
        loads = [
            Load(
                operation=operation,
                host=self.env.host,
                port=self.env.port,
                ca_file=self.env.ca_file,
                token=self.env.token,
                name_prefix=f"rs{self.sequence}-{c}",
                max_requests=_share(max_requests, clients, c),
                seconds=seconds,
                start_at=start_at,
                concurrency=_share(concurrency, clients, c),
                rate=rate / clients,
                expect=expect,
            )
            for c in range(clients)
        ]
        futures = [self.pool.submit(run_load, load) for load in loads]
        time.sleep(max(0.0, start_at - time.time() - 0.05))
        self.meter.begin()
        with self.profiling(profile, seconds):
            results = [f.result(timeout=seconds + 90) for f in futures]
        server_cpu, postgres_cpu, busy = self.meter.end()
        latencies = [lat for r in results for lat in r.latencies]
        errors = sum(r.errors for r in results)
        elapsed = max(r.ended for r in results) - min(r.started for r in results)
        row = Row(
            phase=phase,
            concurrency=(f"{rate:.0f}/s" if rate > 0 else str(concurrency)),
            summary=summarize(latencies, errors=errors, seconds=elapsed),
            client_cpu=sum(r.cpu_seconds for r in results),
            server_cpu=server_cpu,
            postgres_cpu=postgres_cpu,
            busy=busy,
        )
        first = next((r.first_error for r in results if r.first_error), "")
        if first:
            row.note = f"first error {first}"
        if rate > 0:
            lag = max(r.send_lag_max for r in results)
            row.note = (row.note + "; " if row.note else "") + f"client send lag max {lag * 1000:.1f} ms"
        if record:
            self.rows.append(row)
            print(
                f"  {phase}: {row.summary.rate:.0f}/s, p99 {_ms(row.summary.p99)} ms {row.note}", flush=True
            )
        return row

    @contextlib.contextmanager
    def profiling(self, name: str | None, seconds: float) -> Iterator[None]:
        """py-spy records the server during the phase, when ``--profile`` asks and py-spy exists."""
        spy = _find_tool("py-spy")
        if name is None or self.args.profile is None or spy is None:
            yield
            return
        out = Path(self.args.profile) / f"{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [spy, "record", "--pid", str(self.env.server_pid), "--format", "raw", "--rate", "200"]
        cmd += ["--duration", str(max(1, int(seconds))), "--output", str(out), "--nonblocking"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield
        finally:
            try:
                proc.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            print(f"  profile of the server: {out}", flush=True)

    def wrk_gets(self, concurrency: int, seconds: float, max_requests: int) -> None:
        wrk = _find_tool("wrk")
        if wrk is None:
            print("  get-max (wrk): skipped, wrk is not installed (apt-get install -y wrk)", flush=True)
            return
        # Each of wrk's threads stops after its share of max_requests responses (Lua), or at -d.
        threads = 1
        script = self.env.tmp / "wrk.lua"
        script.write_text(
            "local n, limit, bad = 0, %d, 0\n"
            'wrk.headers["Authorization"] = "Bearer %s"\n'
            'wrk.headers["Accept"] = "application/json"\n'
            "function response(status, headers, body)\n"
            "  n = n + 1\n"
            "  if status ~= 200 then bad = bad + 1 end\n"
            "  if n >= limit then wrk.thread:stop() end\n"
            "end\n"
            "function done(summary, latency, requests)\n"
            '  io.write(string.format("bench: p50=%%d p90=%%d p99=%%d max=%%d\\n", '
            "latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))\n"
            "end\n" % (max_requests // threads, self.env.token)
        )
        url = f"https://{self.env.host}:{self.env.port}{RS_PATH}/{GET_NAME}"
        cmd = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", str(script)]
        cmd += ["--timeout", "10s", url]
        self.meter.begin()
        t0 = time.perf_counter()
        wrk_cpu0 = _children_cpu()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
        elapsed = time.perf_counter() - t0
        wrk_cpu = _children_cpu() - wrk_cpu0
        server_cpu, postgres_cpu, busy = self.meter.end()
        requests = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out.stdout)
        pcts = re.search(r"bench: p50=(\d+) p90=(\d+) p99=(\d+) max=(\d+)", out.stdout)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
        if out.returncode != 0 or requests is None or pcts is None:
            print(f"  get-max (wrk): failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
            return
        count = int(requests.group(1))
        secs = float(requests.group(2)) / (1000 if requests.group(3) == "ms" else 1)
        p50, p90, p99, pmax = (int(v) / 1e6 for v in pcts.groups())
        summary = Summary(count, int(non2xx.group(1)) if non2xx else 0, secs or elapsed, p50, p90, p99, pmax)
        row = Row("get-max (wrk)", str(concurrency), summary, wrk_cpu, server_cpu, postgres_cpu, busy)
        self.rows.append(row)
        print(f"  get-max (wrk): {summary.rate:.0f}/s, p99 {_ms(p99)} ms", flush=True)

    def pgbench(self, concurrency: int, seconds: float) -> float:
        """pgbench: one single-row INSERT per transaction; returns TPS (and records a row)."""
        database = "pgbench"
        psql = str(self.env.bin_dir / "psql")
        admin = self.env.postgres_url
        subprocess.run(
            [psql, admin, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", f"DROP DATABASE IF EXISTS {database}"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [psql, admin, "-qAt", "-c", f"CREATE DATABASE {database}"], check=True, capture_output=True
        )
        url = admin.replace("/postgres?", f"/{database}?")
        # The same shape as ``objects``: C-collated text key, JSONB labels (GIN) and body.
        ddl = (
            'CREATE TABLE bench ("group" text COLLATE "C" NOT NULL, plural text COLLATE "C" NOT NULL,'
            ' namespace text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL, uid text,'
            " resource_version bigint NOT NULL, labels jsonb NOT NULL DEFAULT '{}', body jsonb NOT NULL,"
            ' sealed bytea, key_id text, PRIMARY KEY ("group", plural, namespace, name));'
            " CREATE INDEX ON bench USING gin (labels jsonb_path_ops);"
            " CREATE SEQUENCE bench_rv;"
        )
        subprocess.run(
            [psql, url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", ddl], check=True, capture_output=True
        )
        stored = replicaset("x")
        stored["metadata"].update(uid="00000000-0000-0000-0000-000000000000", generation=1)
        stored["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
        body = json.dumps(stored, separators=(",", ":")).replace("'", "''")
        labels = json.dumps(stored["metadata"]["labels"], separators=(",", ":"))
        script = self.env.tmp / "insert.sql"
        script.write_text(
            'INSERT INTO bench ("group", plural, namespace, name, uid, resource_version, labels, body)'
            f" VALUES ('apps', 'replicasets', 'bench', 'rs-' || gen_random_uuid(), gen_random_uuid()::text,"
            f" nextval('bench_rv'), '{labels}', '{body}');\n"
        )
        pgbench = str(self.env.bin_dir / "pgbench")
        threads = min(concurrency, os.cpu_count() or 1)
        cmd = [pgbench, "-n", "-M", "prepared", "-c", str(concurrency), "-j", str(threads)]
        cmd += ["-T", str(max(1, round(seconds))), "-f", str(script), url]
        self.pgbench_command = " ".join(shlex.quote(c) for c in cmd)
        self.meter.begin()
        cpu0 = _children_cpu()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
        client_cpu = _children_cpu() - cpu0
        _, postgres_cpu, busy = self.meter.end()
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
        count = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        latency = re.search(r"latency average = ([\d.]+) ms", out.stdout)
        if out.returncode != 0 or tps is None or count is None:
            print(f"  pgbench failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}", flush=True)
            return math.nan
        rate = float(tps.group(1))
        n = int(count.group(1))
        avg = float(latency.group(1)) / 1000 if latency else math.nan
        summary = Summary(
            n, int(failed.group(1)) if failed else 0, n / rate, avg, math.nan, math.nan, math.nan
        )
        row = Row("pgbench insert", str(concurrency), summary, client_cpu, math.nan, postgres_cpu, busy)
        row.note = "p50 column: pgbench's average latency"
        self.rows.append(row)
        print(f"  pgbench insert: {rate:.0f} TPS", flush=True)
        return rate


def _share(total: int, parts: int, index: int) -> int:
    """``index``-th of ``parts`` near-equal integer shares of ``total``."""
    return total // parts + (1 if index < total % parts else 0)


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _find_tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def machine_description(postgres_version: str) -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
    memory = f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "? GiB"
    return [
        f"machine: {os.cpu_count()} cores, {model.group(1) if model else platform.processor()}, {memory} memory",
        f"python {platform.python_version()}, {postgres_version}, {platform.platform()}",
    ]


def _api_setup(env: Environment) -> None:
    """The namespace of the benchmark and the object the gets read."""
    import httpx  # dev dependency; only the set-up uses it

    verify = ssl.create_default_context(cafile=env.ca_file)
    headers = {"Authorization": f"Bearer {env.token}"}
    with httpx.Client(base_url=f"https://{env.host}:{env.port}", verify=verify, headers=headers) as client:
        made = client.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
        if made.status_code not in (201, 409):
            raise RuntimeError(f"cannot create namespace {NAMESPACE}: {made.status_code} {made.text}")
        made = client.post(RS_PATH, json=replicaset(GET_NAME))
        if made.status_code not in (201, 409):
            raise RuntimeError(f"cannot create the ReplicaSet to get: {made.status_code} {made.text}")


def run(args: argparse.Namespace) -> int:
    from federation.store import EmbeddedPostgres, migrate
    from tests.servers import start_federation

    quick = args.quick
    rate_seconds = args.rate_seconds or (5.0 if quick else 30.0)
    seconds = args.seconds or (3.0 if quick else 15.0)
    conc = args.concurrency
    max_requests = args.max_requests or (5_000 if quick else 200_000)
    command = " ".join(
        shlex.quote(a) for a in [Path(sys.executable).name, "-m", "tests.bench.api", *sys.argv[1:]]
    )

    with tempfile.TemporaryDirectory(prefix="fed-bench-") as tmp_text:
        tmp = Path(tmp_text)
        os.chmod(tmp, 0o755)  # the embedded Postgres may run as its own OS user (as root)
        print(f"starting embedded Postgres and the federation API server in {tmp}", flush=True)
        postgres = EmbeddedPostgres.start(tmp / "postgres")
        federation = None
        bench = None
        try:
            postgres.create_database("federation")
            url = postgres.url("federation")
            migrate.upgrade(url)
            federation = start_federation(tmp / "data", database_url=url)
            found = re.match(r"https://([^:/]+):(\d+)", federation.url)
            assert found is not None, federation.url
            version = subprocess.run(
                [str(postgres.bin_dir / "psql"), postgres.libpq_url(), "-qAt", "-c", "SHOW server_version"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            env = Environment(
                host=found.group(1),
                port=int(found.group(2)),
                ca_file=str(federation.ca_file),
                token=federation.admin_token,
                server_pid=federation.process.pid,
                postgres_pid=_postmaster_pid(postgres.data_dir),
                postgres_url=postgres.libpq_url(),
                bin_dir=postgres.bin_dir,
                tmp=tmp,
            )
            _api_setup(env)
            bench = Bench(env, args)
            machine = machine_description(f"PostgreSQL {version}")
            print("\n".join(machine), flush=True)

            print("warming up (not recorded)", flush=True)
            bench.load(
                "warm-up", "create", concurrency=conc, max_requests=2_000, seconds=2, expect=201, record=False
            )
            bench.load("warm-up", "get", concurrency=conc, max_requests=4_000, seconds=1, record=False)

            print("measuring", flush=True)
            bench.load(
                "client-ceiling /healthz",
                "healthz",
                concurrency=conc,
                max_requests=max_requests,
                seconds=seconds,
            )
            bench.load(
                f"create@{args.rate:.0f}/s open loop",
                "create",
                concurrency=conc,
                rate=args.rate,
                max_requests=max_requests,
                seconds=rate_seconds,
                expect=201,
            )
            creates = bench.load(
                "create-max",
                "create",
                concurrency=conc,
                max_requests=max_requests,
                seconds=seconds,
                expect=201,
                profile="create-max",
            )
            gets = bench.load(
                "get-max",
                "get",
                concurrency=conc,
                max_requests=max_requests,
                seconds=seconds,
                profile="get-max",
            )
            if args.wrk:
                bench.wrk_gets(conc, seconds, max_requests)
            tps = bench.pgbench(conc, seconds)

            print()
            print(f"command: {command}")
            for line in machine:
                print(line)
            print(
                f"server: fedctl up (1 process, uvicorn, TLS), load: {args.clients} client process(es), "
                f"HTTP/1.1 keep-alive over TLS, concurrency {conc} connections"
            )
            print(f"pgbench: {getattr(bench, 'pgbench_command', '-')}")
            print()
            print(table(bench.rows))
            notes = [f"  {r.phase}: {r.note}" for r in bench.rows if r.note]
            if notes:
                print("notes:\n" + "\n".join(notes))
            open_loop = bench.rows[1]
            ratio = creates.summary.rate / tps if tps and not math.isnan(tps) else math.nan
            print()
            print("goals (issue 3):")
            _goal(
                f"p99 create latency at {args.rate:.0f}/s < 50 ms",
                open_loop.summary.p99 * 1000,
                "ms",
                50,
                below=True,
            )
            _goal(
                f"achieved open-loop rate {args.rate:.0f}/s",
                open_loop.summary.rate,
                "/s",
                args.rate * 0.98,
                below=False,
            )
            _goal("creates/s >= 500", creates.summary.rate, "/s", 500, below=False)
            _goal("gets/s >= 2000", gets.summary.rate, "/s", 2000, below=False)
            _goal("creates/s / pgbench TPS >= 0.3", ratio, "", 0.3, below=False)
            return 0
        finally:
            if bench is not None:
                bench.close()
            if federation is not None:
                federation.stop()
            postgres.stop()


def _goal(what: str, value: float, unit: str, target: float, *, below: bool) -> None:
    met = (value < target) if below else (value >= target)
    shown = f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"
    print(f"  {'MET    ' if met else 'NOT MET'}  {what}: {shown}{unit}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per phase (a smoke run)")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop creates per second (200)")
    parser.add_argument("--rate-seconds", type=float, default=None, help="open-loop duration (30; quick 5)")
    parser.add_argument("--seconds", type=float, default=None, help="closed-loop phase limit (15; quick 3)")
    parser.add_argument("--max-requests", type=int, default=None, help="per-phase request limit")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections (16)")
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes (1)")
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", help="skip the wrk phase")
    parser.add_argument("--profile", default=None, help="folder for py-spy profiles of the server")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
