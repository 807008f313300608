"""API bearer tokens: made once, shown once, stored only as a hash.

A token is ``fed_`` followed by 40 base62 characters (about 238 random bits). The database keeps its
sha256 hex digest, its name and its role (``viewer``, ``editor`` or ``admin``); whoever can read the
database cannot use what they read. ``authenticate`` is on every request's path, so it is one
indexed lookup, it records ``last_used_at`` at most once a minute per token, and it remembers
positive answers for ``cache_seconds`` (a token deleted through another process keeps working for at
most that long; deleting through this store forgets it at once). While the database is unreachable,
``authenticate`` raises :class:`~federation.apimachinery.errors.Unavailable` (a 503 with Retry-After,
as every storage call does), not whatever the driver raised; a pooled connection the server ended
(a restart) costs one retry, not a failed request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.apimachinery import ROLES, Role, unavailable
from federation.store.models import tokens

_logger = logging.getLogger(__name__)

PREFIX = "fed_"
_ALPHABET = string.digits + string.ascii_letters
_LENGTH = 40
_TOUCH_AFTER = dt.timedelta(minutes=1)

_AUTHENTICATE = text(
    """
    WITH t AS (SELECT id, name, role, last_used_at FROM tokens WHERE token_hash = :token_hash),
    touched AS (
        UPDATE tokens SET last_used_at = now() FROM t
        WHERE tokens.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - :touch_after)
    )
    SELECT name, role FROM t
    """
)


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: Role
    created_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_role(role: str) -> Role:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


class TokenStore:
    def __init__(self, engine: AsyncEngine, *, cache_seconds: float = 5.0) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, TokenInfo]] = {}
        self._deletions = 0
        """Bumped by every delete, before and after it commits: a lookup overlapping one is not cached."""

    async def create(self, name: str, role: str) -> str:
        """Make a token for ``name``; returns it (the only time it is seen). ValueError for an
        unknown role or a name already in use."""
        checked = _check_role(role)
        if not name:
            raise ValueError("a token needs a name")
        token = PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(tokens).values(name=name, role=checked, token_hash=hash_token(token))
                )
        except IntegrityError:
            raise ValueError(f"a token named {name!r} exists") from None
        return token

    async def authenticate(self, token: str) -> TokenInfo | None:
        """Who presents ``token``, or None for anything that is not a current token."""
        if not token.startswith(PREFIX) or len(token) != len(PREFIX) + _LENGTH:
            return None
        digest = hash_token(token)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        deletions = self._deletions
        row = await self._look_up(digest)
        if row is None:
            self._cache.pop(digest, None)
            return None
        info = TokenInfo(name=row.name, role=_check_role(row.role))
        # Not cached when a delete ran meanwhile: the row read may be one just revoked.
        if self._cache_seconds > 0 and deletions == self._deletions:
            self._cache[digest] = (now + self._cache_seconds, info)
        return info

    async def _look_up(self, digest: str) -> Row[Any] | None:
        for attempt in (1, 2):
            try:
                async with self._engine.begin() as conn:
                    params = {"token_hash": digest, "touch_after": _TOUCH_AFTER}
                    return (await conn.execute(_AUTHENTICATE, params)).first()
            except DBAPIError as exc:
                if exc.connection_invalidated and attempt == 1:
                    continue  # SQLAlchemy has dropped its pool's connections: one retry, on a new one
                if exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError)):
                    # The driver's message can name the server; it goes to the log, not the client.
                    _logger.warning("database unavailable: %s: %s", type(exc.orig).__name__, exc.orig)
                    raise unavailable("the database is unavailable; retry shortly") from None
                raise
        raise AssertionError("unreachable")

    async def list(self) -> list[TokenInfo]:
        """Every token's name, role and times, by name (never the token or its hash)."""
        query = select(tokens.c.name, tokens.c.role, tokens.c.created_at, tokens.c.last_used_at).order_by(
            tokens.c.name
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [TokenInfo(r.name, _check_role(r.role), r.created_at, r.last_used_at) for r in rows]

    async def delete(self, name: str) -> bool:
        """Revoke the token named ``name``; False if there was none."""
        self._deletions += 1
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(tokens).where(tokens.c.name == name).returning(tokens.c.token_hash)
            )
            digests = [r.token_hash for r in result]
        self._deletions += 1
        for digest in digests:
            self._cache.pop(digest, None)
        return bool(digests)

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(tokens))).scalar_one())
