"""Pacing of CPython's cycle collector in the simulator's own process: no pause of seconds at scale.

A full collection stops the process while it walks every live container object, and the simulator
holds millions: each cluster's objects, its Events and its watch window (10,000 changes, each a
copy of an object), as nested dicts and lists. With 10 clusters of 2,000 pods, CPython's own pacing
ran 19 full collections in 100 s, of 0.1 to 3 s each, a quarter of the process's CPU, and
``/readyz`` answered after more than a second, so the federation declared healthy clusters Offline
(``tests/bench/simulator.py --replicasets 10000``). Those objects are JSON trees, without reference
cycles, freed by reference counting the moment they are replaced: walking them finds nothing.

:func:`pace_collector` runs beside the clusters. Every :data:`PERIOD` seconds it counts the objects
in the oldest generation; past :data:`LIMIT`, it collects (a pause bounded by ``LIMIT`` objects,
tens of milliseconds) and freezes the survivors (:func:`gc.freeze`), so that no later collection
walks them again; CPython's own young and full collections go on, over what came since.

The price: a frozen object that later becomes part of an unreachable cycle is never reclaimed. The
simulator's cycles are asyncio's short-lived bookkeeping (a request's task, an exception and its
traceback), collected before each freeze; only those alive at that instant can be lost, and a
freeze follows ``LIMIT`` new long-lived objects, so the loss is a small fraction of the growth.

Only for a process the simulator owns (``python -m federation.sim``, ``fedctl sim up``, through
:func:`~federation.sim.simulator.serve_until_signalled`), never inside a test's process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

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


async def pace_collector(*, period: float = PERIOD, limit: int = LIMIT) -> None:
    """:func:`collect_and_freeze` every ``period`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(period)
        collect_and_freeze(limit=limit)
