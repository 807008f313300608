"""Kubernetes object semantics over a :class:`~federation.apimachinery.storage.Storage`.

This is the generic part of Kubernetes' ``registry/generic``: what happens to an object on create,
update, patch and delete, whatever its kind and whichever storage holds it.

* system metadata (uid, creationTimestamp, generation, resourceVersion) is owned by the server;
* ``generation`` changes only when ``spec`` changes; ``status`` changes only through ``/status``;
* an update that changes nothing writes nothing (and keeps the resourceVersion);
* namespaced objects need an existing namespace that is not terminating, and deleting a namespace
  deletes its contents in the background (:mod:`federation.apimachinery.namespaces`);
* a delete of an object with finalizers only marks it (``deletionTimestamp``); it goes when its
  last finalizer is removed;
* ``/scale`` reads and writes ``spec.replicas`` through a Scale (:mod:`federation.apimachinery.scaling`);
* a delete the server's :class:`~federation.apimachinery.policy.Policy` refuses changes nothing;
* read-modify-write (patch, scale, unconditional update) retries on a concurrent write; a client
  that sent a resourceVersion gets 409 Conflict instead;
* invalid input raises before anything is written, so nothing is ever half-applied.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any, Literal

from federation.apimachinery import patching
from federation.apimachinery.errors import (
    Cause,
    Conflict,
    NotFound,
    already_exists,
    bad_request,
    conflict,
    invalid,
)
from federation.apimachinery.namespaces import NamespaceLifecycle, is_namespace
from federation.apimachinery.objects import copy_json, meta, new_uid, now_rfc3339, rv_of
from federation.apimachinery.policy import KUBERNETES_RULES_ONLY, Policy
from federation.apimachinery.resources import Obj, ResourceType, Scheme
from federation.apimachinery.scaling import SCALE_SCHEMA_REF, requested_replicas, scale_of
from federation.apimachinery.schema import FieldValidation, SchemaSet
from federation.apimachinery.storage import Storage
from federation.apimachinery.validation import object_meta

PatchType = Literal["merge", "strategic", "json"]
MAX_RETRIES = 8
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


def client_version(value: Any) -> int | None:
    """A resourceVersion a client sent as a precondition: None when absent, else a number (400 if not)."""
    if value is None or value == "":
        return None
    # ASCII only: str.isdigit() also holds for "²", which int() refuses; and within int64, as in Go
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) < 2**63:
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


_NAME_REQUIRED = Cause(
    "metadata.name", "Required value: name or generateName is required", "FieldValueRequired"
)


def _check_name(obj: Obj, name: str) -> None:
    """A PUT's body names the object of its URL (400 otherwise, a missing name included), as
    Kubernetes' ``checkName`` has it."""
    given = meta(obj).get("name")
    if given != name:
        raise bad_request(
            f"the name of the object ({given or ''}) does not match the name on the URL ({name})"
        )


def _spec_of(obj: Obj) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Registry:
    """Create, read, update, patch and delete any kind over one storage (see the module docstring).

    ``policy``: the server's own rules on delete (none by default, as in Kubernetes)."""

    def __init__(
        self,
        scheme: Scheme,
        storage: Storage,
        schemas: SchemaSet,
        *,
        termination_delay: float = 1.0,
        policy: Policy = KUBERNETES_RULES_ONLY,
    ) -> None:
        self.scheme = scheme
        self.storage = storage
        self.schemas = schemas
        self.policy = policy
        self.namespaces = NamespaceLifecycle(
            scheme, storage, delete=self.delete, termination_delay=termination_delay
        )

    async def resume_terminations(self) -> None:
        """Finish deleting namespaces left Terminating (by a previous process, say)."""
        await self.namespaces.resume()

    async def close(self) -> None:
        """Stop background namespace terminations (they resume on the next start)."""
        await self.namespaces.close()

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
        if not m.get("name") and not m.get("generateName"):
            # before the strategy's defaults, which may read the name (a Namespace's label does)
            raise invalid(rt.kind, "", [_NAME_REQUIRED], rt.group)
        if not m.get("name"):
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
        await self.namespaces.admit_create(rt, ns)
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
            status = new.get("status")
            if status is None:  # none sent: Go's zero status, which it omits
                merged.pop("status", None)
            else:
                merged["status"] = status
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
            await self.namespaces.after_removal(rt, gone)
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
        current: Obj | None = None,
    ) -> Outcome:
        """Replace the object (PUT). ``current``: the stored object as the caller has just read
        it (a controller's read-modify-write), used as the old object instead of reading it again;
        the storage's precondition refuses the write if it is no longer current."""
        obj, warnings = self._decode(rt, body, opts)
        _check_name(obj, name)
        ns = namespace if rt.namespaced else ""
        client_rv = client_version(meta(obj).get("resourceVersion"))
        for attempt in range(MAX_RETRIES):
            old = current if attempt == 0 and current is not None else await self.storage.get(rt, ns, name)
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
                current: Obj = scale_of(old)
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
            ref = SCALE_SCHEMA_REF if subresource == "scale" else rt.schema_ref
            result = patching.strategic_merge_patch(current, patch, self.schemas, ref)
        if not isinstance(result, dict):
            raise bad_request("the patch did not produce an object")
        return result

    # ------------------------------------------------------------------ scale

    async def _apply_scale(
        self, rt: ResourceType, old: Obj, scale: Any, opts: WriteOptions, *, client_rv: int | None
    ) -> Outcome | None:
        """Write ``scale.spec.replicas`` into the object; None asks the caller to retry a lost race.
        ``scale`` (a body, or a patched Scale) is decoded against the Scale schema first."""
        if not isinstance(scale, dict):
            raise bad_request("expected a Scale object")
        warnings = self.schemas.decode(scale, SCALE_SCHEMA_REF, field_validation=opts.field_validation)
        replicas = requested_replicas(old, scale)
        if client_rv is not None and client_rv != rv_of(old):
            raise conflict(rt.plural, meta(old)["name"], rt.group)
        new = copy_json(old)
        new.setdefault("spec", {})["replicas"] = replicas
        merged = self._merge_update(rt, new, old, None)
        outcome = await self._replace(rt, merged, old, opts, client_rv=client_rv, warnings=warnings)
        return None if outcome is None else Outcome(scale_of(outcome.object), outcome.warnings)

    async def update_scale(
        self, rt: ResourceType, namespace: str, name: str, body: Any, opts: WriteOptions
    ) -> Outcome:
        ns = namespace if rt.namespaced else ""
        if not isinstance(body, dict):
            raise bad_request("expected a Scale object")
        _check_name(body, name)  # decoded against the Scale schema by _apply_scale
        client_rv = client_version(meta(body).get("resourceVersion"))
        for _ in range(MAX_RETRIES):
            old = await self.storage.get(rt, ns, name)
            outcome = await self._apply_scale(rt, old, copy_json(body), opts, client_rv=client_rv)
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
            namespace_kind = is_namespace(rt)
            if namespace_kind:
                self.namespaces.admit_delete(name)
            self.policy.admit_delete(rt, old)
            if dry_run:
                if not (namespace_kind or m.get("finalizers")):
                    return Outcome(old, deleted=True)
                marked = copy_json(old)
                meta(marked).setdefault("deletionTimestamp", now_rfc3339())
                if namespace_kind:
                    marked["status"] = {"phase": "Terminating"}
                return Outcome(marked)
            try:
                if namespace_kind:
                    return Outcome(await self.namespaces.mark_terminating(old))
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
            await self.namespaces.after_removal(rt, gone)
            return Outcome(gone, deleted=True)
        raise _too_many_retries(rt, name)
