"""What the traffic failover tests and the traffic benchmark share: the client's view per second and
the balancer's view per upstream.

* :class:`Seconds` keeps what :func:`federation.cli.probing.probe` reports each second, with the
  monotonic time that second began, so a figure can be cut to a window (the outage) and a region's
  answers placed in time (one-second resolution: the probe engine tallies by second).
* :class:`UpstreamWatch` samples the Caddy balancer's own record of each upstream
  (``GET /reverse_proxy/upstreams`` on its loopback admin API: requests in flight and recent
  failures per ``host:port``) every ``period`` seconds, so "a request reached the region" is seen
  where it happens, whether the region answered, refused or held it. A request is counted as having
  reached an upstream at a sample where that upstream has a request in flight or more failures than
  at the previous sample (a failure expires after ``traffic_fail_duration``, so a rise is a new one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from federation.cli.probing import Second
from federation.traffic import CaddyError, CaddyProcess


@dataclass
class Seconds:
    """The probe's seconds; ``began(t)`` is when second ``t`` (1-based) started, in ``time.monotonic``."""

    start: float = field(default_factory=time.monotonic)
    items: list[Second] = field(default_factory=list)

    def __call__(self, second: Second) -> None:
        self.items.append(second)

    def began(self, second: Second) -> float:
        return self.start + second.t - 1

    def within(self, first: float, last: float) -> list[Second]:
        """The seconds that overlap ``[first, last]`` (monotonic times)."""
        return [s for s in self.items if self.began(s) + 1 > first and self.began(s) <= last]

    @staticmethod
    def failed_fraction(seconds: list[Second]) -> tuple[int, int, float]:
        """(failed, sent, failed / sent) over ``seconds``."""
        failed = sum(s.failed for s in seconds)
        sent = failed + sum(s.ok for s in seconds)
        return failed, sent, failed / sent if sent else 0.0

    def last_served_by(self, cluster: str) -> float | None:
        """When the last second in which ``cluster`` answered a request ended (None: never)."""
        served = [s for s in self.items if s.by_region.get(cluster)]
        return self.began(served[-1]) + 1 if served else None


@dataclass
class UpstreamWatch:
    """Samples of the balancer's upstreams: (monotonic time, {dial: (in flight, failures)})."""

    balancer: CaddyProcess
    period: float = 0.05
    samples: list[tuple[float, dict[str, tuple[int, int]]]] = field(default_factory=list)
    errors: int = 0

    async def sample(self) -> None:
        try:
            listed: list[dict[str, Any]] = await self.balancer.get("/reverse_proxy/upstreams")
        except CaddyError:  # a balancer being restarted answers nothing for a moment
            self.errors += 1
            return
        upstreams = {
            str(u.get("address")): (int(u.get("num_requests") or 0), int(u.get("fails") or 0))
            for u in listed or []
        }
        self.samples.append((time.monotonic(), upstreams))

    @contextlib.asynccontextmanager
    async def running(self, *, limit: float = 300.0) -> AsyncIterator[UpstreamWatch]:
        """Sample until the block ends (at most ``limit`` seconds)."""

        async def loop() -> None:
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                await self.sample()
                await asyncio.sleep(self.period)

        task = asyncio.create_task(loop(), name="upstream watch")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reached(self, dial: str) -> list[float]:
        """The sample times at which a request was seen reaching ``dial`` (see the module docstring)."""
        times: list[float] = []
        fails_before = 0
        for at, upstreams in self.samples:
            in_flight, fails = upstreams.get(dial, (0, 0))
            if in_flight > 0 or fails > fails_before:
                times.append(at)
            fails_before = fails
        return times

    def last_reached(self, dial: str, *, after: float) -> float | None:
        later = [t for t in self.reached(dial) if t >= after]
        return later[-1] if later else None
