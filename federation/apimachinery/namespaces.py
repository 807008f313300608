"""Namespace lifecycle: Kubernetes' NamespaceLifecycle admission and its namespace controller.

The :class:`~federation.apimachinery.registry.Registry` hands namespaces to a
:class:`NamespaceLifecycle`, which guarantees, as Kubernetes does:

* something namespaced is created only in a namespace that exists and is not Terminating (read
  through a cache of at most :data:`NAMESPACE_CHECK_SECONDS`, as Kubernetes' admission reads
  through an informer);
* the namespaces Kubernetes makes itself, :data:`PROTECTED_NAMESPACES`, may not be deleted (a
  server with namespaces of its own protects them through its
  :class:`~federation.apimachinery.policy.Policy`);
* deleting a namespace marks it ``Terminating`` at once; its contents are deleted in the background
  a moment later (so ``kubectl delete -f`` of a namespace and its contents still finds the
  contents), then the namespace goes, once it is empty;
* a termination belongs to one namespace (name and uid): a namespace re-created under the same name
  is never deleted, nor are its contents, for the old one, whichever process terminates it;
* terminations a stopped process left unfinished are taken up by :meth:`NamespaceLifecycle.resume`,
  which a server runs once per start (see ``build_app(resume_terminations=...)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from federation.apimachinery.errors import ApiError, Conflict, NotFound, forbidden, not_found
from federation.apimachinery.kinds import NAMESPACES
from federation.apimachinery.objects import copy_json, meta, now_rfc3339, rv_of
from federation.apimachinery.resources import Obj, ResourceType, Scheme
from federation.apimachinery.storage import Storage

log = logging.getLogger(__name__)

PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
"""The namespaces Kubernetes' own NamespaceLifecycle admission never lets anyone delete."""
NAMESPACE_CHECK_SECONDS = 1.0
"""How long a namespace seen active is trusted without reading it again. Kubernetes' namespace
admission reads through an informer cache with the same kind of lag; termination waits longer than
this and then deletes until the namespace is empty, so late arrivals are still removed."""
TERMINATION_PASSES = 5
"""Passes over a Terminating namespace's contents before it is left to the next removal."""

DeleteObject = Callable[[ResourceType, str, str], Awaitable[object]]
"""Deletes one object (kind, namespace, name) with the registry's semantics (finalizers kept)."""


def is_namespace(rt: ResourceType) -> bool:
    return rt.group == "" and rt.plural == "namespaces"


class NamespaceLifecycle:
    """The namespaces of one storage: admission of creates, marking, termination in the background."""

    def __init__(
        self, scheme: Scheme, storage: Storage, *, delete: DeleteObject, termination_delay: float
    ) -> None:
        self.scheme = scheme
        self.storage = storage
        self.termination_delay = termination_delay
        self._delete = delete
        self._terminations: dict[tuple[str, str], asyncio.Task[None]] = {}
        """Running namespace terminations by (name, uid): a namespace deleted, re-created and
        deleted again while the first termination is still going gets its own."""
        self._active: dict[str, float] = {}
        """Namespaces seen to exist and not terminate, until when (saves a read per create)."""

    # ------------------------------------------------------------------ admission

    async def admit_create(self, rt: ResourceType, namespace: str) -> None:
        """Refuse a create of ``rt`` in a namespace that does not exist (404) or is terminating (403)."""
        if not rt.namespaced:
            return
        checked = self._active.get(namespace)
        if checked is not None and checked > time.monotonic():
            return
        try:
            ns = await self.storage.get(NAMESPACES, "", namespace)
        except NotFound:
            raise not_found("namespaces", namespace) from None
        if meta(ns).get("deletionTimestamp"):
            raise forbidden(
                f"{rt.plural}{'.' + rt.group if rt.group else ''} is forbidden: unable to create new "
                f"content in namespace {namespace} because it is being terminated"
            )
        if len(self._active) > 10_000:
            self._active.clear()
        self._active[namespace] = time.monotonic() + NAMESPACE_CHECK_SECONDS

    @staticmethod
    def admit_delete(name: str) -> None:
        """Refuse deleting one of :data:`PROTECTED_NAMESPACES` (403, as Kubernetes words it)."""
        if name in PROTECTED_NAMESPACES:
            raise forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')

    # ------------------------------------------------------------------ deletion

    async def mark_terminating(self, ns_obj: Obj) -> Obj:
        """Mark the namespace ``ns_obj`` Terminating (once) and schedule its termination; the
        namespace as stored now. Raises Conflict when it changed since it was read."""
        name = meta(ns_obj)["name"]
        self._active.pop(name, None)
        current = ns_obj
        if not meta(ns_obj).get("deletionTimestamp"):
            marked = copy_json(ns_obj)
            meta(marked)["deletionTimestamp"] = now_rfc3339()
            marked["status"] = {"phase": "Terminating"}
            current = await self.storage.update(NAMESPACES, marked, precondition_rv=rv_of(ns_obj))
        self._schedule(current, delay=self.termination_delay)
        return current

    async def after_removal(self, rt: ResourceType, gone: Obj) -> None:
        """When the last object of a terminating namespace goes, the namespace goes too."""
        if not rt.namespaced:
            return
        ns_name = str(meta(gone).get("namespace", ""))
        try:
            ns = await self.storage.get(NAMESPACES, "", ns_name)
        except NotFound:
            return
        if meta(ns).get("deletionTimestamp"):
            await self._finish(ns_name, ns)

    # ------------------------------------------------------------------ background terminations

    async def resume(self) -> None:
        """Finish deleting namespaces left Terminating (by a previous process, say)."""
        page = await self.storage.list(NAMESPACES, None)
        for ns in page.items:
            if meta(ns).get("deletionTimestamp"):
                log.info("resuming the termination of namespace %s", meta(ns)["name"])
                self._schedule(ns, delay=0)

    async def settled(self) -> None:
        """Until every termination this process has begun has ended (done, or given up)."""
        while self._terminations:
            await asyncio.wait(list(self._terminations.values()))

    async def close(self) -> None:
        """Stop background namespace terminations (they resume on the next start)."""
        tasks = list(self._terminations.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._terminations.clear()

    def _schedule(self, ns: Obj, *, delay: float) -> None:
        name, uid = str(meta(ns)["name"]), str(meta(ns).get("uid", ""))
        key = (name, uid)
        if key in self._terminations:
            return

        async def terminate() -> None:
            try:
                await asyncio.sleep(delay)
                await self._terminate(name, uid)
            except ApiError as err:
                log.warning("terminating namespace %s: %s", name, err.message)
            finally:
                self._terminations.pop(key, None)

        self._terminations[key] = asyncio.create_task(terminate(), name=f"terminate-namespace-{name}")

    async def _terminate(self, name: str, uid: str) -> None:
        """Delete everything in a Terminating namespace, then the namespace once it is empty.

        Passes repeat while a pass still finds objects to delete (a create admitted just before
        the namespace was marked may land after the first pass). Each pass first checks that the
        namespace is still the one that was marked (same uid, still Terminating): another process
        may have finished it meanwhile and someone created a namespace of the same name, whose
        contents are not ours to delete."""
        for _ in range(TERMINATION_PASSES):
            if await self._terminating(name, uid) is None:
                return
            found = 0
            for rt in self.scheme.types:
                if not rt.namespaced:
                    continue
                page = await self.storage.list(rt, name)
                for item in page.items:
                    found += 1
                    with contextlib.suppress(NotFound):
                        await self._delete(rt, name, meta(item)["name"])
            if not found:
                break
            await asyncio.sleep(NAMESPACE_CHECK_SECONDS)
        current = await self._terminating(name, uid)
        if current is not None:
            await self._finish(name, current)

    async def _terminating(self, name: str, uid: str) -> Obj | None:
        """The namespace ``name`` if it exists, is Terminating and has this ``uid``."""
        try:
            current = await self.storage.get(NAMESPACES, "", name)
        except NotFound:
            return None
        if not meta(current).get("deletionTimestamp"):
            return None
        if str(meta(current).get("uid", "")) != uid:
            return None
        return current

    async def _finish(self, name: str, current: Obj) -> None:
        """Delete the Terminating namespace ``current`` once it holds nothing. The delete is
        conditional on its version, and retried on a fresh read when that changed, as long as it
        is the same namespace, still Terminating: a namespace re-created under the same name is
        never deleted for the old one."""
        uid = str(meta(current).get("uid", ""))
        for _ in range(TERMINATION_PASSES):
            for rt in self.scheme.types:
                if rt.namespaced and await self.storage.count(rt, name):
                    return
            try:
                await self.storage.delete(NAMESPACES, "", name, precondition_rv=rv_of(current))
            except NotFound:
                return
            except Conflict:
                refreshed = await self._terminating(name, uid)
                if refreshed is None:
                    return
                current = refreshed
            else:
                return
