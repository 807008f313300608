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

from collections.abc import Callable

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


async def update_status(
    registry: Registry, rt: ResourceType, namespace: str, name: str, mutate: Mutation
) -> Obj | None:
    """Apply ``mutate`` to the current object and store it; None when the object is gone."""
    ns = namespace if rt.namespaced else ""
    for _ in range(MAX_ATTEMPTS):
        try:
            current = await registry.storage.get(rt, ns, name)
        except NotFound:
            return None
        changed = copy_json(current)
        if not mutate(changed):
            return current
        try:
            return await registry.storage.update(rt, changed, precondition_rv=rv_of(current))
        except Conflict:
            continue
        except NotFound:
            return None
    raise Conflict.make(f"{rt.qualified} {name!r}: too many concurrent changes to its status")


async def update_object(
    registry: Registry, rt: ResourceType, namespace: str, name: str, mutate: Mutation
) -> Obj | None:
    """Apply ``mutate`` to the current object and store it through the registry (validation,
    generation, finalizers); None when the object is gone (or went, its last finalizer removed)."""
    ns = namespace if rt.namespaced else ""
    for _ in range(MAX_ATTEMPTS):
        try:
            current = await registry.storage.get(rt, ns, name)
        except NotFound:
            return None
        changed = copy_json(current)
        if not mutate(changed):
            return current
        try:
            outcome = await registry.update(rt, ns, name, changed, WriteOptions())
        except Conflict:
            continue
        except NotFound:
            return None
        return (
            None
            if outcome.deleted or meta(outcome.object).get("uid") != meta(current).get("uid")
            else outcome.object
        )
    raise Conflict.make(f"{rt.qualified} {name!r}: too many concurrent changes")
