"""Leader election in one process over a real Postgres: the lease is renewed off the event loop.

With 100 clusters the controllers' event loop was held up for seconds at a time (1,500 threads,
long collections), renewals made on it came late, and the leader lost its lease 13 times in one
run of ``tests.bench.controllers scale``. The renewal now runs on a thread of its own
(:class:`~federation.store.LeaseRenewer`). The process-level handovers (a killed leader replaced,
a paused one stepping down) are in ``tests/e2e/test_controller_leadership.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from federation.controllers import Leadership
from federation.store import LeaseStore, PostgresStorage, make_engine

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[object]:
    made = make_engine(database_url, pool_size=2)
    yield made
    await made.dispose()


async def test_a_leader_whose_event_loop_is_held_up_keeps_its_lease(postgres, engine: object) -> None:  # type: ignore[no-untyped-def]
    storage: PostgresStorage = await postgres()
    leases = LeaseStore(engine)  # type: ignore[arg-type]
    name = "federation-controllers-held-up"
    leadership = Leadership(leases, storage, duration=2, name=name)
    started, resumed = asyncio.Event(), asyncio.Event()

    async def lead(fenced: PostgresStorage, holds: Callable[[], bool]) -> None:
        started.set()
        time.sleep(3.5)  # noqa: ASYNC251 - the loop held up past the 2 s lease, as by a long collection
        resumed.set()
        await asyncio.Event().wait()

    running = asyncio.create_task(leadership.run(lead))
    try:
        await asyncio.wait_for(started.wait(), 15)
        await asyncio.wait_for(resumed.wait(), 15)
        await asyncio.sleep(1.0)  # the leader's loop looks at its lease at least once more
        assert leadership.leading, "the leader stepped down after its event loop was held up"
        state = await leases.read(name)
        assert state is not None
        assert state.holder == leadership.holder
        assert state.remaining > 0
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert not leadership.leading
    state = await leases.read(name)
    assert state is not None
    assert state.remaining <= 0, "the lease is released when the leader stops"
