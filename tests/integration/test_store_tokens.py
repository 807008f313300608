"""API tokens: shown once, stored hashed, checked by role."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import psycopg
import pytest

from federation.store.engine import database_url as sqlalchemy_url
from federation.store.engine import make_engine
from federation.store.tokens import PREFIX, TokenStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TokenStore]:
    engine = make_engine(database_url, pool_size=2)
    try:
        yield TokenStore(engine)
    finally:
        await engine.dispose()


async def test_create_authenticate_list_delete(store: TokenStore, database_url: str) -> None:
    token = await store.create("alice", "editor")
    assert token.startswith(PREFIX)
    assert len(token) > 40
    info = await store.authenticate(token)
    assert info is not None
    assert (info.name, info.role) == ("alice", "editor")
    assert await store.authenticate(token[:-1] + ("a" if token[-1] != "a" else "b")) is None
    assert await store.authenticate("Bearer nonsense") is None

    libpq = sqlalchemy_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(libpq) as conn:
        cur = await conn.execute("SELECT token_hash, last_used_at FROM tokens WHERE name = 'alice'")
        stored = await cur.fetchone()
    assert stored is not None
    assert stored[0] == hashlib.sha256(token.encode()).hexdigest()
    assert stored[1] is not None, "last use is recorded"

    listed = await store.list()
    assert [(t.name, t.role) for t in listed] == [("alice", "editor")]
    assert listed[0].created_at is not None
    assert await store.delete("alice") is True
    assert await store.delete("alice") is False
    assert await store.authenticate(token) is None


async def test_roles_and_names_are_checked(store: TokenStore) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        await store.create("bob", "root")
    await store.create("bob", "viewer")
    with pytest.raises(ValueError, match="exists"):
        await store.create("bob", "admin")
    tokens = {role: await store.create(f"user-{role}", role) for role in ("viewer", "editor", "admin")}
    for role, token in tokens.items():
        info = await store.authenticate(token)
        assert info is not None
        assert info.role == role
