"""Kubernetes object semantics over a :class:`~federation.apimachinery.storage.Storage`.

This is the generic part of Kubernetes' ``registry/generic``: what happens to an object on create,
update, patch and delete, whatever its kind and whichever storage holds it.

* system metadata (uid, creationTimestamp, generation, resourceVersion) is owned by the server;
* ``generation`` changes only when ``spec`` changes; ``status`` changes only through ``/status``;
* an update that changes nothing writes nothing (and keeps the resourceVersion);
* namespaced objects need an existing namespace that is not terminating;
* a delete of an object with finalizers only marks it (``deletionTimestamp``); it goes when its
  last finalizer is removed;
* deleting a namespace marks it ``Terminating`` at once; its contents are deleted in the background
  a moment later (as Kubernetes' namespace controller does, so ``kubectl delete -f`` of a namespace
  and its contents still finds the contents), then the namespace goes;
* read-modify-write (patch, scale, unconditional update) retries on a concurrent write; a client
  that sent a resourceVersion gets 409 Conflict instead;
* invalid input raises before anything is written, so nothing is ever half-applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any, Literal

from federation.apimachinery import patching
from federation.apimachinery.errors import (
    ApiError,
    Cause,
    Conflict,
    NotFound,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
)
from federation.apimachinery.kinds import NAMESPACES
from federation.apimachinery.objects import copy_json, meta, new_uid, now_rfc3339, rv_of
from federation.apimachinery.resources import Obj, ResourceType, Scheme
from federation.apimachinery.schema import SchemaSet
from federation.apimachinery.selectors import label_selector_from_object
from federation.apimachinery.storage import Storage
from federation.apimachinery.validation import object_meta

log = logging.getLogger(__name__)

FieldValidation = Literal["Strict", "Warn", "Ignore"]
PatchType = Literal["merge", "strategic", "json"]
MAX_RETRIES = 8
NAMESPACE_CHECK_SECONDS = 1.0
"""How long a namespace seen active is trusted without reading it again. Kubernetes' namespace
admission reads through an informer cache with the same kind of lag; termination waits longer than
this and then deletes until the namespace is empty, so late arrivals are still removed."""
_SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
)


@dataclass(frozen=True)
class WriteOptions:
    field_validation: FieldValidation = "Strict"
    dry_run: bool = False


@dataclass(frozen=True)
class Outcome:
    object: Obj
    warnings: tuple[str, ...] = ()
    created: bool = False
    deleted: bool = False
    """For a delete: True when the object left the store (not only marked for deletion)."""


PROTECTED_NAMESPACES = frozenset(
    {"default", "kube-system", "kube-public", "kube-node-lease", "federation-system"}
)
"""Namespaces that exist from the start and may not be deleted (Kubernetes protects its own so)."""


def client_version(value: Any) -> int | None:
    """A resourceVersion a client sent as a precondition: None when absent, else a number (400 if not)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise bad_request(f'invalid resourceVersion "{value}": must be a decimal number')


def patch_version(patch_type: PatchType, patch: Any) -> int | None:
    """The resourceVersion a patch document carries (a precondition), never the patched result's."""
    if patch_type == "json":
        for op in patch if isinstance(patch, list) else []:
            if (
                isinstance(op, dict)
                and op.get("path") == "/metadata/resourceVersion"
                and op.get("op")
                in (
                    "add",
                    "replace",
                    "test",
                )
            ):
                return client_version(op.get("value"))
        return None
    metadata = patch.get("metadata") if isinstance(patch, dict) else None
    return client_version(metadata.get("resourceVersion")) if isinstance(metadata, dict) else None


def _too_many_retries(rt: ResourceType, name: str) -> Conflict:
    """A read-modify-write that lost the race :data:`MAX_RETRIES` times in a row."""
    return Conflict.make(f'too many concurrent writes to {rt.qualified} "{name}"; try again')


def _spec_of(obj: Obj) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Registry:
    def __init__(
        self, scheme: Scheme, storage: Storage, schemas: SchemaSet, *, termination_delay: float = 1.0
    ) -> None:
        self.scheme = scheme
        self.storage = storage
        self.schemas = schemas
        self.termination_delay = termination_delay
        self._terminations: dict[tuple[str, str], asyncio.Task[None]] = {}
        """Running namespace terminations by (name, uid): a namespace deleted, re-created and
        deleted again while the first termination is still going gets its own."""
        self._active_namespaces: dict[str, float] = {}
        """Namespaces seen to exist and not terminate, until when (saves a read per create)."""

    async def resume_terminations(self) -> None:
        """Finish deleting namespaces left Terminating (by a previous process, say)."""
        page = await self.storage.list(NAMESPACES, None)
        for ns in page.items:
            if meta(ns).get("deletionTimestamp"):
                self._schedule_termination(ns, delay=0)

    async def close(self) -> None:
        """Stop background namespace terminations (they resume on the next start)."""
        tasks = list(self._terminations.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._terminations.clear()

    def _schedule_termination(self, ns: Obj, *, delay: float) -> None:
        name, uid = str(meta(ns)["name"]), str(meta(ns).get("uid", ""))
        key = (name, uid)
        if key in self._terminations:
            return

        async def terminate() -> None:
            try:
                await asyncio.sleep(delay)
                await self._terminate_namespace(name, uid)
            except ApiError as err:
                log.warning("terminating namespace %s: %s", name, err.message)
            finally:
                self._terminations.pop(key, None)

        self._terminations[key] = asyncio.create_task(terminate(), name=f"terminate-namespace-{name}")

    # ------------------------------------------------------------------ decoding and checks

    def _check_type(self, rt: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request(f"the body of the request must be a {rt.kind} object")
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if api_version is not None and api_version != rt.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        if kind is not None and kind != rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        body["apiVersion"] = rt.api_version
        body["kind"] = rt.kind
        return body

    def _decode(self, rt: ResourceType, body: Any, opts: WriteOptions) -> tuple[Obj, list[str]]:
        obj = self._check_type(rt, body)
        warnings = self.schemas.decode(obj, rt.schema_ref, field_validation=opts.field_validation)
        if not isinstance(obj.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")
        return obj, warnings

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        causes: list[Cause] = list(object_meta(meta(obj)))
        if old is not None and meta(old).get("deletionTimestamp"):
            added = set(meta(obj).get("finalizers") or []) - set(meta(old).get("finalizers") or [])
            if added:
                causes.append(
                    Cause(
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                        "FieldValueForbidden",
                    )
                )
        if old is None:
            causes += rt.strategy.validate(obj)
        else:
            causes += rt.strategy.validate_update(obj, old)
        if causes:
            # Report each problem once, in a stable order.
            unique = list(dict.fromkeys(causes))
            raise invalid(rt.kind, str(meta(obj).get("name", "")), unique, rt.group)

    async def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if not rt.namespaced:
            return
        checked = self._active_namespaces.get(namespace)
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
        if len(self._active_namespaces) > 10_000:
            self._active_namespaces.clear()
        self._active_namespaces[namespace] = time.monotonic() + NAMESPACE_CHECK_SECONDS

    # ------------------------------------------------------------------ reads

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return await self.storage.get(rt, namespace if rt.namespaced else "", name)

    # ------------------------------------------------------------------ create

    async def create(self, rt: ResourceType, namespace: str, body: Any, opts: WriteOptions) -> Outcome:
        obj, warnings = self._decode(rt, body, opts)
        m = meta(obj)
        ns = namespace if rt.namespaced else ""
        body_ns = m.get("namespace")
        if rt.namespaced and body_ns not in (None, "", ns):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if not m.get("name") and m.get("generateName"):
            suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            m["name"] = f"{m['generateName']}{suffix}"
        if rt.namespaced:
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
        for key in _SYSTEM_META:
            m.pop(key, None)
        m["uid"] = new_uid()
        m["creationTimestamp"] = now_rfc3339()
        if rt.strategy.has_generation:
            m["generation"] = 1
        if rt.strategy.has_status:
            obj.pop("status", None)
        rt.strategy.prepare_for_create(obj)
        self._validate(rt, obj, None)
        await self._check_namespace(rt, ns)
        if opts.dry_run:
            try:
                await self.storage.get(rt, ns, str(m["name"]))
            except NotFound:
                pass
            else:
                raise already_exists(rt.plural, str(m["name"]), rt.group)
            return Outcome(obj, tuple(warnings), created=True)
        stored = await self.storage.create(rt, obj)
        return Outcome(stored, tuple(warnings), created=True)

    # ------------------------------------------------------------------ update and patch

    def _merge_update(self, rt: ResourceType, new: Obj, old: Obj, subresource: str | None) -> Obj:
        """The object to store when ``new`` replaces ``old`` through the main resource or ``/status``."""
        if subresource == "status":
            merged = copy_json(old)
            merged["status"] = new.get("status")
            return merged
        result = new
        m = meta(result)
        old_meta = meta(old)
        for key in (
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if key in old_meta:
                m[key] = old_meta[key]
            else:
                m.pop(key, None)
        m.pop("managedFields", None)
        m.pop("selfLink", None)
        if rt.namespaced:
            m["namespace"] = old_meta.get("namespace", "")
        if rt.strategy.has_status:
            if "status" in old:
                result["status"] = copy_json(old["status"])
            else:
                result.pop("status", None)
        rt.strategy.prepare_for_update(result, old)
        if rt.strategy.has_generation and _spec_of(result) != _spec_of(old):
            m["generation"] = int(old_meta.get("generation", 1)) + 1
        return result

    @staticmethod
    def _check_identity(rt: ResourceType, obj: Obj, old: Obj, *, name: str, namespace: str) -> None:
        """What a PUT or a patch may not change: name, namespace, uid (a uid is a precondition)."""
        m = meta(obj)
        if m.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({m.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and m.get("namespace") not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        uid, old_uid = m.get("uid"), meta(old).get("uid")
        if uid and uid != old_uid:
            why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
            raise conflict(rt.plural, name, rt.group, why)

    async def _write(
        self, rt: ResourceType, obj: Obj, old: Obj, opts: WriteOptions, *, precondition: int
    ) -> Obj:
        """Store ``obj`` over ``old`` unless nothing changed; finish a deletion whose finalizers are gone."""
        m = meta(obj)
        m["resourceVersion"] = meta(old).get("resourceVersion")
        if obj == old:
            return old
        if opts.dry_run:
            return obj
        if m.get("deletionTimestamp") and not m.get("finalizers"):
            gone = await self.storage.delete(
                rt, str(m.get("namespace", "")), str(m["name"]), precondition_rv=precondition
            )
            await self._after_removal(rt, gone)
            return gone
        return await self.storage.update(rt, obj, precondition_rv=precondition)

    async def _replace(
        self,
        rt: ResourceType,
        merged: Obj,
        old: Obj,
        opts: WriteOptions,
        *,
        client_rv: int | None,
        warnings: list[str],
    ) -> Outcome | None:
        """Validate and store ``merged`` over ``old``. None: another write came first and the
        client gave no version, so the caller reads again and retries (Kubernetes' GuaranteedUpdate)."""
        self._validate(rt, merged, old)
        try:
            stored = await self._write(rt, merged, old, opts, precondition=rv_of(old))
        except Conflict:
            if client_rv is None:
                return None
            raise
        return Outcome(stored, tuple(warnings))

    async def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str | None = None,
    ) -> Outcome:
        obj, warnings = self._decode(rt, body, opts)
        ns = namespace if rt.namespaced else ""
        client_rv = client_version(meta(obj).get("resourceVersion"))
        for _ in range(MAX_RETRIES):
            old = await self.storage.get(rt, ns, name)
            self._check_identity(rt, obj, old, name=name, namespace=ns)
            meta(obj)["name"] = name
            if client_rv is not None and client_rv != rv_of(old):
                raise conflict(rt.plural, name, rt.group)
            merged = self._merge_update(rt, copy_json(obj), old, subresource)
            outcome = await self._replace(rt, merged, old, opts, client_rv=client_rv, warnings=warnings)
            if outcome is not None:
                return outcome
        raise _too_many_retries(rt, name)

    async def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: PatchType,
        patch: Any,
        opts: WriteOptions,
        *,
        subresource: str | None = None,
    ) -> Outcome:
        ns = namespace if rt.namespaced else ""
        if patch_type != "json" and not isinstance(patch, dict):
            raise bad_request("the patch must be a JSON object")
        client_rv = patch_version(patch_type, patch)
        for _ in range(MAX_RETRIES):
            old = await self.storage.get(rt, ns, name)
            if client_rv is not None and client_rv != rv_of(old):
                raise conflict(rt.plural, name, rt.group)
            if subresource == "scale":
                current: Obj = self.scale_of(rt, old)
            else:
                current = copy_json(old)
            patched = self._apply_patch(rt, current, patch_type, patch, subresource=subresource)
            if subresource == "scale":
                outcome = await self._apply_scale(rt, old, patched, opts, client_rv=client_rv)
                if outcome is None:
                    continue
                return outcome
            self._check_identity(rt, patched, old, name=name, namespace=ns)
            meta(patched)["name"] = name
            obj, warnings = self._decode(rt, patched, opts)
            merged = self._merge_update(rt, obj, old, subresource)
            outcome = await self._replace(rt, merged, old, opts, client_rv=client_rv, warnings=warnings)
            if outcome is not None:
                return outcome
        raise _too_many_retries(rt, name)

    def _apply_patch(
        self, rt: ResourceType, current: Obj, patch_type: PatchType, patch: Any, *, subresource: str | None
    ) -> Obj:
        if patch_type == "merge":
            result = patching.merge_patch(current, patch)
        elif patch_type == "json":
            result = patching.json_patch(current, patch)
        else:
            ref = "io.k8s.api.autoscaling.v1.Scale" if subresource == "scale" else rt.schema_ref
            result = patching.strategic_merge_patch(current, patch, self.schemas, ref)
        if not isinstance(result, dict):
            raise bad_request("the patch did not produce an object")
        return result

    # ------------------------------------------------------------------ scale

    def scale_of(self, rt: ResourceType, obj: Obj) -> Obj:
        m = meta(obj)
        selector = (obj.get("spec") or {}).get("selector") or {}
        try:
            selector_text = str(label_selector_from_object(selector))
        except ValueError:
            selector_text = ""
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: m[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in m
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0), "selector": selector_text},
        }

    async def _apply_scale(
        self, rt: ResourceType, old: Obj, scale: Any, opts: WriteOptions, *, client_rv: int | None
    ) -> Outcome | None:
        """Write ``scale.spec.replicas`` into the object; None asks the caller to retry a lost race."""
        if not isinstance(scale, dict) or scale.get("kind", "Scale") != "Scale":
            raise bad_request("expected a Scale object")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise invalid(
                "Scale",
                meta(old)["name"],
                [Cause("spec.replicas", "Required value: must be an integer", "FieldValueRequired")],
                "autoscaling",
            )
        if replicas < 0:
            raise invalid(
                "Scale",
                meta(old)["name"],
                [Cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
                "autoscaling",
            )
        if client_rv is not None and client_rv != rv_of(old):
            raise conflict(rt.plural, meta(old)["name"], rt.group)
        new = copy_json(old)
        new.setdefault("spec", {})["replicas"] = replicas
        merged = self._merge_update(rt, new, old, None)
        outcome = await self._replace(rt, merged, old, opts, client_rv=client_rv, warnings=[])
        return None if outcome is None else Outcome(self.scale_of(rt, outcome.object))

    async def update_scale(
        self, rt: ResourceType, namespace: str, name: str, body: Any, opts: WriteOptions
    ) -> Outcome:
        ns = namespace if rt.namespaced else ""
        client_rv = client_version(meta(body).get("resourceVersion")) if isinstance(body, dict) else None
        for _ in range(MAX_RETRIES):
            old = await self.storage.get(rt, ns, name)
            outcome = await self._apply_scale(rt, old, body, opts, client_rv=client_rv)
            if outcome is not None:
                return outcome
        raise _too_many_retries(rt, name)

    # ------------------------------------------------------------------ delete

    async def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Outcome:
        ns = namespace if rt.namespaced else ""
        for _ in range(MAX_RETRIES):
            old = await self.storage.get(rt, ns, name)
            m = meta(old)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != m.get("uid"):
                raise conflict(
                    rt.plural,
                    name,
                    rt.group,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{m.get('uid')}",
                )
            if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(m.get("resourceVersion")):
                raise conflict(rt.plural, name, rt.group)
            is_namespace = rt.group == "" and rt.plural == "namespaces"
            if is_namespace and name in PROTECTED_NAMESPACES:
                raise forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
            if dry_run:
                if not (is_namespace or m.get("finalizers")):
                    return Outcome(old, deleted=True)
                marked = copy_json(old)
                meta(marked).setdefault("deletionTimestamp", now_rfc3339())
                if is_namespace:
                    marked["status"] = {"phase": "Terminating"}
                return Outcome(marked)
            try:
                if is_namespace:
                    return await self._delete_namespace(old)
                if m.get("finalizers"):
                    if m.get("deletionTimestamp"):
                        return Outcome(old)
                    marked = copy_json(old)
                    meta(marked)["deletionTimestamp"] = now_rfc3339()
                    meta(marked)["deletionGracePeriodSeconds"] = 0
                    return Outcome(await self.storage.update(rt, marked, precondition_rv=rv_of(old)))
                gone = await self.storage.delete(rt, ns, name, precondition_rv=rv_of(old))
            except Conflict:
                continue
            await self._after_removal(rt, gone)
            return Outcome(gone, deleted=True)
        raise _too_many_retries(rt, name)

    async def _delete_namespace(self, ns_obj: Obj) -> Outcome:
        name = meta(ns_obj)["name"]
        self._active_namespaces.pop(name, None)
        current = ns_obj
        if not meta(ns_obj).get("deletionTimestamp"):
            marked = copy_json(ns_obj)
            meta(marked)["deletionTimestamp"] = now_rfc3339()
            marked["status"] = {"phase": "Terminating"}
            current = await self.storage.update(NAMESPACES, marked, precondition_rv=rv_of(ns_obj))
        self._schedule_termination(current, delay=self.termination_delay)
        return Outcome(current)

    async def _terminate_namespace(self, name: str, uid: str) -> None:
        """Delete everything in a Terminating namespace, then the namespace once it is empty.

        Passes repeat while a pass still finds objects to delete (a create admitted just before
        the namespace was marked may land after the first pass). Each pass first checks that the
        namespace is still the one that was marked (same uid, still Terminating): another process
        may have finished it meanwhile and someone created a namespace of the same name, whose
        contents are not ours to delete."""
        for _ in range(5):
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
                        await self.delete(rt, name, meta(item)["name"])
            if not found:
                break
            await asyncio.sleep(NAMESPACE_CHECK_SECONDS)
        current = await self._terminating(name, uid)
        if current is not None:
            await self._finish_namespace(name, current)

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

    async def _finish_namespace(self, name: str, current: Obj) -> Outcome:
        """Delete the Terminating namespace ``current`` once it holds nothing. The delete is
        conditional on its version, and retried on a fresh read when that changed, as long as it
        is the same namespace, still Terminating: a namespace re-created under the same name is
        never deleted for the old one."""
        uid = str(meta(current).get("uid", ""))
        for _ in range(5):
            for rt in self.scheme.types:
                if rt.namespaced and await self.storage.count(rt, name):
                    return Outcome(current)
            try:
                gone = await self.storage.delete(NAMESPACES, "", name, precondition_rv=rv_of(current))
            except NotFound:
                return Outcome(current, deleted=True)
            except Conflict:
                refreshed = await self._terminating(name, uid)
                if refreshed is None:
                    return Outcome(current)
                current = refreshed
            else:
                return Outcome(gone, deleted=True)
        return Outcome(current)

    async def _after_removal(self, rt: ResourceType, gone: Obj) -> None:
        """When the last object of a terminating namespace goes, the namespace goes too."""
        if not rt.namespaced:
            return
        ns_name = str(meta(gone).get("namespace", ""))
        try:
            ns = await self.storage.get(NAMESPACES, "", ns_name)
        except NotFound:
            return
        if meta(ns).get("deletionTimestamp"):
            await self._finish_namespace(ns_name, ns)
