"""The traffic probe's engine: a paced HTTP sender and a tally, for ``fedctl traffic test``, the demo and
the traffic benchmark.

Why it exists: to watch a failover from the client's side. :func:`probe` sends ``rate`` GET requests a
second for ``duration`` seconds to one URL and reports, once a second, the answers by region and the
failures by kind, then a :class:`Summary`.

What it guarantees:

* **Bounded.** ``rate`` 1..2000 a second, ``duration`` 1..3600 s, exactly ``rate * duration`` requests
  at most; at most ``max_in_flight`` requests at once; each ends ``timeout`` seconds after it was due.
  The run lasts ``duration`` plus at most ``timeout`` (the last requests' answers).
* **Loopback only** (127.0.0.0/8, ::1, ``localhost``) unless the caller passes ``allow_remote``; the
  environment's proxies are ignored, so the request goes where the URL says.
* **Open loop.** Request ``i`` is due at ``start + i / rate`` whatever happened to the earlier ones: a
  late answer never slows the sending. A request due while ``max_in_flight`` are pending is not sent
  and counts as the failure ``skipped``. Latency runs from the moment a request was due, so time spent
  waiting for a free connection is counted (no coordinated omission).
* **Keep-alive**: ``connections`` workers (a small pool, as a browser keeps a few), each with one
  connection (:mod:`federation.cli.fetching`) and one request at a time; a request due while all are
  busy waits for one, and fails as ``timeout`` at its deadline if none frees up.
* A response's region is its ``X-Sim-Cluster`` header, else a JSON body's ``region`` or ``cluster``,
  else ``"other"``. 2xx and 3xx answers are ``ok``; anything else fails with its kind: ``refused``,
  ``connect``, ``timeout``, ``reset`` (the connection dropped mid-request), ``protocol``, ``skipped``,
  or the HTTP status (``"503"``). Latency percentiles are over ``ok`` answers, to 0.1 ms.
* Each second is reported once, in order, as it ends (``t`` = 1 for the first); seconds after
  ``duration`` are reported only while late answers arrive in them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from federation.cli.fetching import Answer, Connection, ProtocolError, Target

MAX_RATE = 2000
MAX_DURATION = 3600
DEFAULT_TIMEOUT = 2.0
MAX_TIMEOUT = 60.0
DEFAULT_IN_FLIGHT = 1000
DEFAULT_CONNECTIONS = 16
OTHER = "other"
_YIELD_EVERY = 64  # a sender catching up still lets the requests it started run
_EXPIRE_EVERY = 0.05  # how often waiting requests past their deadline are counted as timed out
_GRACE = 0.5  # past the last deadline, the run ends even if an answer is still being read
_BODY_FOR_REGION = 64 * 1024


class ProbeError(ValueError):
    """A target or a bound the probe refuses; the message is one readable line."""


@dataclass(frozen=True)
class Second:
    """What ended during one second of the run: ``t`` = 1 is the first second."""

    t: int
    by_region: dict[str, int]
    failures: dict[str, int]
    p50_ms: float | None
    p99_ms: float | None

    @property
    def ok(self) -> int:
        return sum(self.by_region.values())

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


@dataclass(frozen=True)
class Summary:
    """The whole run. ``sent`` = ``ok + failed`` (skipped requests are failures); ``answered`` counts
    every HTTP answer, ok or not; ``duration`` is in seconds, latencies in milliseconds."""

    url: str
    rate: int
    sent: int
    ok: int
    failed: int
    answered: int
    failure_fraction: float
    by_region: dict[str, int]
    failures: dict[str, int]
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    duration: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_target(url: str, *, allow_remote: bool = False) -> str:
    """``url`` if the probe may send to it: http(s) with a host, on loopback unless ``allow_remote``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        raise ProbeError(f"not a URL: {url!r} ({err})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ProbeError(f"not an http(s) URL with a host: {url!r}")
    if not allow_remote and not is_loopback(host):
        raise ProbeError(f"{host} is not a loopback address; pass --allow-remote to probe it on purpose")
    return url


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_of(answer: Answer) -> str:
    """The region an answer names (see the module docstring)."""
    cluster = answer.headers.get("x-sim-cluster")
    if cluster:
        return cluster
    body = answer.body
    if body and len(body) <= _BODY_FOR_REGION and body.lstrip()[:1] == b"{":
        try:
            doc = json.loads(body)
        except ValueError:
            return OTHER
        for field in ("region", "cluster"):
            value = doc.get(field) if isinstance(doc, dict) else None
            if isinstance(value, str) and value:
                return value
    return OTHER


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def failure_kind(err: BaseException) -> str:
    """The kind a transport failure is counted under."""
    if isinstance(err, TimeoutError):
        return "timeout"
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    if isinstance(err, ConnectionError | asyncio.IncompleteReadError):
        return "reset"  # reset, aborted, broken pipe, or closed before the whole answer came
    if isinstance(err, ProtocolError):
        return "protocol"
    if isinstance(err, OSError):
        return "connect"  # no route, name not resolved, TLS refused, ...
    return "error"


class _Bucket:
    __slots__ = ("by_region", "failures", "latencies")

    def __init__(self) -> None:
        self.by_region: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.latencies: list[float] = []


class Tally:
    """Outcomes by the second they ended in, and the totals; percentiles over a 0.1 ms histogram."""

    def __init__(self) -> None:
        self.buckets: dict[int, _Bucket] = {}
        self.emitted = 0  # seconds [0, emitted) are reported; later outcomes never land there
        self.by_region: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.answered = 0
        self._tenths: Counter[int] = Counter()
        self._max_ms: float | None = None

    def _bucket(self, index: int) -> _Bucket:
        index = max(index, self.emitted)
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = _Bucket()
        return bucket

    def ok(self, index: int, region: str, latency_ms: float) -> None:
        bucket = self._bucket(index)
        bucket.by_region[region] += 1
        bucket.latencies.append(latency_ms)
        self.by_region[region] += 1
        self.answered += 1
        self._tenths[round(latency_ms * 10)] += 1
        self._max_ms = latency_ms if self._max_ms is None else max(self._max_ms, latency_ms)

    def failure(self, index: int, kind: str, *, answered: bool = False) -> None:
        self._bucket(index).failures[kind] += 1
        self.failures[kind] += 1
        self.answered += answered

    def last_index(self) -> int:
        return max(self.buckets, default=-1)

    def second(self, index: int) -> Second:
        """Close second ``index`` (0-based) and return it as reported (``t = index + 1``)."""
        bucket = self.buckets.pop(index, None) or _Bucket()
        self.emitted = max(self.emitted, index + 1)
        ordered = sorted(bucket.latencies)
        return Second(
            t=index + 1,
            by_region=dict(sorted(bucket.by_region.items())),
            failures=dict(sorted(bucket.failures.items())),
            p50_ms=percentile(ordered, 0.50),
            p99_ms=percentile(ordered, 0.99),
        )

    def latency(self, q: float) -> float | None:
        total = sum(self._tenths.values())
        if not total:
            return None
        rank, seen = max(1, math.ceil(q * total)), 0
        for tenth in sorted(self._tenths):
            seen += self._tenths[tenth]
            if seen >= rank:
                return min(tenth / 10, self._max_ms or 0.0)
        return self._max_ms  # pragma: no cover - the ranks always reach ``total``

    def summary(self, url: str, rate: int, duration: float) -> Summary:
        ok, failed = sum(self.by_region.values()), sum(self.failures.values())
        sent = ok + failed
        return Summary(
            url=url,
            rate=rate,
            sent=sent,
            ok=ok,
            failed=failed,
            answered=self.answered,
            failure_fraction=failed / sent if sent else 0.0,
            by_region=dict(sorted(self.by_region.items())),
            failures=dict(sorted(self.failures.items())),
            p50_ms=self.latency(0.50),
            p90_ms=self.latency(0.90),
            p99_ms=self.latency(0.99),
            max_ms=self._max_ms,
            duration=round(duration, 3),
        )


def check_bounds(*, rate: int, duration: int, timeout: float, max_in_flight: int, connections: int) -> None:
    if not 1 <= rate <= MAX_RATE:
        raise ProbeError(f"rate must be 1..{MAX_RATE} requests a second, not {rate}")
    if not 1 <= duration <= MAX_DURATION:
        raise ProbeError(f"duration must be 1..{MAX_DURATION} seconds, not {duration}")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ProbeError(f"timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds, not {timeout}")
    if not 1 <= max_in_flight <= 10_000 or not 1 <= connections <= 1000:
        raise ProbeError("max_in_flight must be 1..10000 and connections 1..1000")


async def probe(
    url: str,
    *,
    rate: int,
    duration: int,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - each request's, not the whole run's
    on_second: Callable[[Second], None] | None = None,
    allow_remote: bool = False,
    max_in_flight: int = DEFAULT_IN_FLIGHT,
    connections: int = DEFAULT_CONNECTIONS,
    stop: asyncio.Event | None = None,
) -> Summary:
    """Send ``rate`` GETs a second to ``url`` for ``duration`` seconds; call ``on_second`` as each
    second ends; return the summary. Setting ``stop`` ends the sending early (the summary still comes).

    Raises :class:`ProbeError` for a refused target or bound, before sending anything.
    """
    check_target(url, allow_remote=allow_remote)
    check_bounds(
        rate=rate, duration=duration, timeout=timeout, max_in_flight=max_in_flight, connections=connections
    )
    run = _Run(Target.of(url), timeout=timeout, connections=connections, max_in_flight=max_in_flight)
    elapsed = await run.go(rate=rate, duration=duration, on_second=on_second, stop=stop)
    return run.tally.summary(url, rate, elapsed)


class _Run:
    """One probe run: the sender hands due times to ``connections`` workers, each with one kept-alive
    connection; due times no worker is free for wait in ``backlog`` and time out there at their deadline."""

    def __init__(self, target: Target, *, timeout: float, connections: int, max_in_flight: int) -> None:
        self.target = target
        self.timeout = timeout
        self.connections = connections
        self.max_in_flight = max_in_flight
        self.tally = Tally()
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.backlog: deque[float] = deque()
        self.idle: deque[asyncio.Future[float]] = deque()
        self.busy = 0
        self.quiet = asyncio.Event()  # nothing waiting, nothing being answered

    def settle(self) -> None:
        if not self.backlog and not self.busy:
            self.quiet.set()

    def index_now(self) -> int:
        return int(self.loop.time() - self.start)

    def submit(self, due: float) -> None:
        while self.idle:
            waiter = self.idle.popleft()
            if not waiter.done():
                self.busy += 1  # counted from the hand-over, so the run never ends between the two
                waiter.set_result(due)
                return
        if self.busy + len(self.backlog) >= self.max_in_flight:
            self.tally.failure(self.index_now(), "skipped")
        else:
            self.backlog.append(due)

    def expire(self) -> None:
        """Count as timed out the waiting requests whose deadline has passed."""
        now = self.loop.time()
        while self.backlog and self.backlog[0] + self.timeout <= now:
            self.backlog.popleft()
            self.tally.failure(self.index_now(), "timeout")
        self.settle()

    async def work(self) -> None:
        connection = Connection(self.target)
        try:
            while True:
                if self.backlog:
                    due = self.backlog.popleft()
                    self.busy += 1
                else:
                    waiter: asyncio.Future[float] = self.loop.create_future()
                    self.idle.append(waiter)
                    due = await waiter  # submit() counted it busy
                try:
                    await self.one(connection, due)
                finally:
                    self.busy -= 1
                    self.settle()
        finally:
            connection.close()

    async def one(self, connection: Connection, due: float) -> None:
        if self.loop.time() >= due + self.timeout:
            self.tally.failure(self.index_now(), "timeout")
            return
        try:
            async with asyncio.timeout_at(due + self.timeout):
                answer = await connection.get()
        except asyncio.CancelledError:
            self.tally.failure(self.index_now(), "timeout")  # the run's hard stop
            raise
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ProtocolError) as err:
            self.tally.failure(self.index_now(), failure_kind(err))
            return
        if answer.status < 400:
            self.tally.ok(self.index_now(), region_of(answer), (self.loop.time() - due) * 1000)
        else:
            self.tally.failure(self.index_now(), str(answer.status), answered=True)

    async def tick(self, on_second: Callable[[Second], None] | None) -> None:
        while True:
            next_second = self.start + self.tally.emitted + 1
            while (now := self.loop.time()) < next_second:
                self.expire()
                await asyncio.sleep(min(_EXPIRE_EVERY, next_second - now))
            self.expire()
            second = self.tally.second(self.tally.emitted)
            if on_second is not None:
                on_second(second)

    async def send(self, rate: int, duration: int, stop: asyncio.Event | None) -> None:
        for i in range(rate * duration):
            if stop is not None and stop.is_set():
                return
            due = self.start + i / rate
            wait = due - self.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            self.submit(due)

    async def go(
        self,
        *,
        rate: int,
        duration: int,
        on_second: Callable[[Second], None] | None,
        stop: asyncio.Event | None,
    ) -> float:
        workers = [asyncio.create_task(self.work()) for _ in range(self.connections)]
        ticker = asyncio.create_task(self.tick(on_second))
        try:
            await self.send(rate, duration, stop)
            self.quiet.clear()
            self.settle()
            quiet = asyncio.create_task(self.quiet.wait())
            await asyncio.wait([quiet, ticker], timeout=self.timeout + _GRACE, return_when="FIRST_COMPLETED")
            quiet.cancel()
        finally:
            for task in [*workers, ticker]:
                task.cancel()
            await asyncio.wait([*workers, ticker])
        while self.backlog:  # only after the hard stop: these waited too long
            self.backlog.popleft()
            self.tally.failure(self.index_now(), "timeout")
        error = None if ticker.cancelled() else ticker.exception()
        if error is not None:
            raise error  # on_second failed
        elapsed = self.loop.time() - self.start
        last = max(self.tally.last_index(), min(duration, math.ceil(elapsed)) - 1)
        while self.tally.emitted <= last:
            second = self.tally.second(self.tally.emitted)
            if on_second is not None:
                on_second(second)
        return elapsed
