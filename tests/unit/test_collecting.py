"""The pacing of the cycle collector in our own processes: it collects and freezes only past its
limit, and lets young collections wait for many allocations while it runs."""

from __future__ import annotations

import asyncio
import gc

import pytest

from federation.apimachinery import YOUNG_THRESHOLD, collect_and_freeze, paced_collector


def test_the_collector_freezes_only_past_its_limit() -> None:
    kept = [{"n": [i]} for i in range(1000)]  # long-lived objects, whatever the tests before froze
    gc.collect()  # and the survivors of a full collection are the oldest generation
    assert collect_and_freeze(limit=10**9) == 0
    try:
        assert collect_and_freeze(limit=0) >= len(kept)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


@pytest.mark.anyio
async def test_pacing_lets_young_collections_wait_and_puts_the_threshold_back() -> None:
    before = gc.get_threshold()
    async with paced_collector():
        await asyncio.sleep(0)
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_threshold() == before
