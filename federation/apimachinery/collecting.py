"""Pacing of CPython's cycle collector in our long-running processes: no pause of seconds at scale.

A full collection stops the process while it walks every live container object, and our processes
hold millions: the simulator each cluster's objects, Events and watch window; the controllers
every member's copies and pods as their watches show them, and the federation's objects; the API
server its watch window. All as nested dicts and lists. Measured:

* the simulator, 10 clusters of 2,000 pods: CPython's own pacing ran 19 full collections in 100 s,
  of 0.1 to 3 s each, a quarter of the process's CPU, and ``/readyz`` answered after more than a
  second, so the federation declared healthy clusters Offline (``tests/bench/simulator.py
  --replicasets 10000``);
* the controllers, 1,000 ReplicaSets over 10 clusters (``tests/bench/controllers.py failover``):
  29 full collections took 11.4 s of the run's CPU.

Those objects are JSON trees, without reference cycles, freed by reference counting the moment
they are replaced: walking them finds nothing.

:func:`pace_collector` runs beside the process's work. It lets young collections wait for many more
allocations (:data:`YOUNG_THRESHOLD`). Every :data:`PERIOD` seconds it counts the objects in the
oldest generation; past :data:`LIMIT`, it collects (a pause bounded by ``LIMIT``
objects, tens of milliseconds) and freezes the survivors (:func:`gc.freeze`), so that no later
collection walks them again; CPython's own young and full collections go on, over what came since.

The price: a frozen object that later becomes part of an unreachable cycle is never reclaimed. The
cycles here are asyncio's short-lived bookkeeping (a request's task, an exception and its
traceback), collected before each freeze; only those alive at that instant can be lost, and a
freeze follows ``LIMIT`` new long-lived objects, so the loss is a small fraction of the growth.

Only for a process that is ours alone (``python -m federation.sim`` and ``fedctl sim up``,
``federation-controller``): :func:`paced_collector` around its main coroutine. Never inside a
test's process. (``fedctl up``'s server processes, which run the controllers beside the API, do
not pace it yet: not measured there.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)

PERIOD = 0.5
"""Seconds between two looks at the oldest generation."""
LIMIT = 50_000
"""Objects in the oldest generation past which it is collected and frozen: a pause of 20-50 ms on
the 2-core development machine under load (100,000 took 40-200 ms)."""


def collect_and_freeze(*, limit: int = LIMIT) -> int:
    """Collect and freeze if the oldest generation holds more than ``limit`` objects; how many it
    held (0: nothing done)."""
    held = len(gc.get_objects(generation=2))
    if held <= limit:
        return 0
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.debug("collected and froze %d objects in %.3f s", held, time.perf_counter() - started)
    return held


YOUNG_THRESHOLD = 50_000
"""Allocations that start a young collection while the collector is paced (CPython's default is
700). The controllers allocate a JSON tree per watch event, API call and copy, nearly all freed by
reference counting: with 700, 100 clusters x 100 ReplicaSets spent 21.1 s of 59 s of CPU in the
collector (37 full collections, the lease lost once); with 50,000, 5.3 s (1 full), converged in 55 s
instead of 68 s (``tests/bench/controllers.py scale``)."""


async def pace_collector(*, period: float = PERIOD, limit: int = LIMIT) -> None:
    """:func:`collect_and_freeze` every ``period`` seconds, until cancelled; meanwhile young
    collections wait for :data:`YOUNG_THRESHOLD` allocations."""
    previous = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, *previous[1:])
    try:
        while True:
            await asyncio.sleep(period)
            collect_and_freeze(limit=limit)
    finally:
        gc.set_threshold(*previous)


@contextlib.asynccontextmanager
async def paced_collector() -> AsyncIterator[None]:
    """:func:`pace_collector` in a task for as long as the block runs."""
    pacer = asyncio.get_running_loop().create_task(pace_collector(), name="cycle collector pacing")
    try:
        yield
    finally:
        pacer.cancel()
        await asyncio.gather(pacer, return_exceptions=True)
