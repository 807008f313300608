"""The simulator process's pacing of the cycle collector: it collects and freezes only past its limit."""

from __future__ import annotations

import gc

from federation.apimachinery import collect_and_freeze


def test_the_collector_freezes_only_past_its_limit() -> None:
    assert collect_and_freeze(limit=10**9) == 0
    try:
        assert collect_and_freeze(limit=0) > 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
