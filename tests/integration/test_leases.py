"""Leases and fencing in Postgres: one holder at a time, and a holder that lost its lease cannot write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from federation.apimachinery import NAMESPACES, SECRETS
from federation.store import Fence, Fenced, LeaseStore, PostgresStorage, make_engine
from federation.store.sealing import Sealer

pytestmark = pytest.mark.anyio
LEASE = "federation-controllers"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[object]:
    made = make_engine(database_url, pool_size=2)
    yield made
    await made.dispose()


async def test_one_holder_at_a_time_until_it_expires_or_is_released(engine: object) -> None:
    leases = LeaseStore(engine)  # type: ignore[arg-type]
    name = f"{LEASE}-a"
    assert await leases.acquire(name, "one", duration=2)
    assert not await leases.acquire(name, "two", duration=2)
    assert await leases.renew(name, "one", duration=2)
    assert not await leases.renew(name, "two", duration=2)
    state = await leases.read(name)
    assert state is not None
    assert state.holder == "one"
    assert 0 < state.remaining <= 2
    await asyncio.sleep(2.1)
    assert not await leases.renew(name, "one", duration=2), "an expired lease cannot be renewed"
    assert await leases.acquire(name, "two", duration=2)
    await leases.release(name, "two")
    assert await leases.acquire(name, "one", duration=2), "a released lease is free at once"


async def test_a_holder_that_lost_the_lease_cannot_write(postgres, engine: object, sealer: Sealer) -> None:  # type: ignore[no-untyped-def]
    leases = LeaseStore(engine)  # type: ignore[arg-type]
    name = f"{LEASE}-b"
    storage: PostgresStorage = await postgres()
    old = storage.fenced(Fence(name, "old"))
    new = storage.fenced(Fence(name, "new"))
    with pytest.raises(Fenced):  # nobody holds it yet
        await old.create(NAMESPACES, {"metadata": {"name": "fenced-a"}})
    assert await leases.acquire(name, "old", duration=2)
    await old.create(NAMESPACES, {"metadata": {"name": "fenced-b"}})
    await asyncio.sleep(2.1)  # as if paused past its lease
    assert await leases.acquire(name, "new", duration=5)
    with pytest.raises(Fenced):
        await old.create(SECRETS, {"metadata": {"name": "late", "namespace": "fenced-b"}})
    await new.create(SECRETS, {"metadata": {"name": "on-time", "namespace": "fenced-b"}})
    page = await storage.list(SECRETS, "fenced-b")
    assert [s["metadata"]["name"] for s in page.items] == ["on-time"]
    await old.close()  # a view: the storage it came from goes on
    assert (await storage.get(NAMESPACES, "", "fenced-b"))["metadata"]["name"] == "fenced-b"


async def test_a_renewal_does_not_wait_for_the_holders_writes_but_a_takeover_does(engine: object) -> None:
    """A fenced write transaction holds the lease row (FOR KEY SHARE): the holder's renewal goes
    through beside it (with FOR SHARE it waited, and a leader whose writes were held open lost its
    lease), while a takeover still waits for it to end, so the old holder's write commits first."""
    leases = LeaseStore(engine)  # type: ignore[arg-type]
    name = f"{LEASE}-c"
    assert await leases.acquire(name, "one", duration=2)
    async with engine.connect() as writer:  # type: ignore[attr-defined]
        await writer.execute(
            text("SELECT federation_fence(:lease, :holder)"), {"lease": name, "holder": "one"}
        )
        assert await asyncio.wait_for(leases.renew(name, "one", duration=2), 1.5)
        await asyncio.sleep(2.1)  # the lease lapses while the write is still open
        takeover = asyncio.create_task(leases.acquire(name, "two", duration=5))
        await asyncio.sleep(0.5)
        assert not takeover.done(), "a takeover must wait for the old holder's writes in flight"
        await writer.commit()
    assert await asyncio.wait_for(takeover, 5)
    state = await leases.read(name)
    assert state is not None
    assert state.holder == "two"
