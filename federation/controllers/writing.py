"""Writing what the controllers own back to the federation's store, without losing a race.

A controller's write starts from the object as it is now (read fresh, never the cached copy a
handler saw), changes only what the controller owns, and is stored only if that version is still
current; on a conflict it reads again and retries, as client-go's ``RetryOnConflict`` does. A write
that would change nothing is not made at all, so the steady state writes nothing.

Status goes to the storage directly (a status write has no spec, finalizers or generation to check);
everything else (Placements, finalizers) goes through the registry, which validates, stamps and
finishes a deletion whose last finalizer goes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from federation.apimachinery import (
    Conflict,
    NotFound,
    Obj,
    Registry,
    ResourceType,
    WriteOptions,
    copy_json,
    meta,
    rv_of,
)

MAX_ATTEMPTS = 8

Mutation = Callable[[Obj], bool]
"""Changes the object in place; returns whether it changed anything."""


Store = Callable[[Obj, Obj], Awaitable[Obj | None]]
"""Writes the changed object over the current one: the stored object, or None when it is gone."""


async def _read_modify_write(
    registry: Registry,
    rt: ResourceType,
    namespace: str,
    name: str,
    mutate: Mutation,
    store: Store,
    cached: Obj | None = None,
) -> Obj | None:
    """Read fresh, apply ``mutate``, ``store`` conditionally; again on a conflict. With ``cached``
    (an informer's copy), the first attempt starts from it instead of a read: the store's
    precondition refuses it if it is not current, and the next attempt reads fresh."""
    ns = namespace if rt.namespaced else ""
    for attempt in range(MAX_ATTEMPTS):
        if attempt == 0 and cached is not None:
            current = cached
        else:
            try:
                current = await registry.storage.get(rt, ns, name)
            except NotFound:
                return None
        changed = copy_json(current)
        if not mutate(changed):
            return current
        try:
            return await store(changed, current)
        except Conflict:
            continue
        except NotFound:
            return None
    raise Conflict.make(f"{rt.qualified} {name!r}: too many concurrent changes")


async def update_status(
    registry: Registry,
    rt: ResourceType,
    namespace: str,
    name: str,
    mutate: Mutation,
    *,
    cached: Obj | None = None,
) -> Obj | None:
    """Apply ``mutate`` to the current object and store it; None when the object is gone.
    ``cached``: the object as an informer last showed it, tried first (no read when it is current)."""

    async def store(changed: Obj, current: Obj) -> Obj | None:
        return await registry.storage.update(rt, changed, precondition_rv=rv_of(current))

    return await _read_modify_write(registry, rt, namespace, name, mutate, store, cached)


async def update_object(
    registry: Registry,
    rt: ResourceType,
    namespace: str,
    name: str,
    mutate: Mutation,
    *,
    cached: Obj | None = None,
) -> Obj | None:
    """Apply ``mutate`` to the current object and store it through the registry (validation,
    generation, finalizers); None when the object is gone (or went, its last finalizer removed).
    ``cached``: as for :func:`update_status`."""
    ns = namespace if rt.namespaced else ""

    async def store(changed: Obj, current: Obj) -> Obj | None:
        outcome = await registry.update(rt, ns, name, changed, WriteOptions(), current=current)
        gone = outcome.deleted or meta(outcome.object).get("uid") != meta(current).get("uid")
        return None if gone else outcome.object

    return await _read_modify_write(registry, rt, namespace, name, mutate, store, cached)
