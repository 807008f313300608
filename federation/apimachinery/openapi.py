"""OpenAPI v3 documents, as kubectl reads them before ``apply``, ``explain`` and validation.

``/openapi/v3`` lists each group-version's document with a content hash; each document is OpenAPI
3.0 with a path per operation of every kind in the scheme (its write operations carry
``x-kubernetes-group-version-kind`` and the ``fieldValidation`` parameter, which is what makes
kubectl leave field validation to the server) and the reachable definitions of the official
schemas (see :mod:`federation.apimachinery.schema`), converted from JSON Schema to OpenAPI 3.0.
Each response declared is what the server sends (the fuzz test, ``tests/e2e/test_fuzz.py``,
checks every answer against it). Documents are built once per scheme and cached.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from federation.apimachinery.resources import ResourceType, Scheme
from federation.apimachinery.schema import (
    DEFS_PREFIX,
    OAS_PREFIX,
    PINNED_KUBERNETES,
    SchemaSet,
    official_schemas,
    ref_name,
)

_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf")
_SCHEMA_KEYS = ("items", "additionalProperties", "not")


def _to_openapi(schema: Any, refs: set[str]) -> Any:
    """Convert one JSON-Schema (2020) schema to OpenAPI 3.0, collecting referenced names.

    Only schema positions are interpreted: the keys of ``properties`` are field names (JSONSchemaProps
    has a field literally named ``$ref``), and ``x-`` extension values are copied untouched."""
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            non_null = [t for t in value if t != "null"]
            if len(non_null) == 1:
                out["type"] = non_null[0]
            if "null" in value:
                out["nullable"] = True
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {name: _to_openapi(sub, refs) for name, sub in value.items()}
        elif key in _SCHEMA_KEYS and isinstance(value, Mapping):
            out[key] = _to_openapi(value, refs)
        elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
            out[key] = [_to_openapi(sub, refs) for sub in value]
        else:
            out[key] = value
    alternatives = out.get("oneOf")
    if isinstance(alternatives, list) and all(
        isinstance(a, Mapping) and set(a) <= {"type", "nullable", "format"} for a in alternatives
    ):
        # IntOrString / Quantity: either type, as a structural schema says it (a CRD's
        # int-or-string is exactly this); a response holds whichever the client sent.
        types = list(dict.fromkeys(a.get("type") for a in alternatives if a.get("type")))
        del out["oneOf"]
        out["anyOf"] = [{"type": t} for t in types]
        if "integer" in types:
            out["format"] = "int-or-string"
            out["x-kubernetes-int-or-string"] = True
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref_name(ref)
        refs.add(name)
        target = {"$ref": OAS_PREFIX + name}
        if not out:
            return target
        out.pop("nullable", None)
        return {"allOf": [target], **out}
    return out


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "kind": rt.kind, "version": rt.version}


_STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
_DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
_WATCH_EVENT = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
_PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
_LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
_SCALE = "io.k8s.api.autoscaling.v1.Scale"
_SCALE_GVK = {"group": "autoscaling", "kind": "Scale", "version": "v1"}


def _param(
    name: str, where: str, schema_type: str, description: str, *, required: bool = False
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "name": name,
        "in": where,
        "description": description,
        "schema": {"type": schema_type},
    }
    if required or where == "path":
        p["required"] = True
    return p


_P_PRETTY = _param("pretty", "query", "string", "If 'true', then the output is pretty printed.")
_P_NAME = _param("name", "path", "string", "name of the object")
_P_NAMESPACE = _param(
    "namespace", "path", "string", "object name and auth scope, such as for teams and projects"
)
_P_DRY_RUN = _param(
    "dryRun", "query", "string", "When present, indicates that modifications should not be persisted."
)
_P_FIELD_MANAGER = _param(
    "fieldManager", "query", "string", "fieldManager is a name of the actor making changes."
)
_P_FIELD_VALIDATION = _param(
    "fieldValidation",
    "query",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request containing unknown or "
    "duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
)
_P_FORCE = _param("force", "query", "boolean", "Force is going to force Apply requests.")
_P_GRACE = _param(
    "gracePeriodSeconds", "query", "integer", "The duration in seconds before the object is deleted."
)
_P_PROPAGATION = _param(
    "propagationPolicy", "query", "string", "Whether and how garbage collection is performed."
)
_LIST_PARAMS = [
    _param(
        "allowWatchBookmarks",
        "query",
        "boolean",
        "allowWatchBookmarks requests watch events of type BOOKMARK.",
    ),
    _param("continue", "query", "string", "The continue option from a previous list call."),
    _param(
        "fieldSelector", "query", "string", "A selector to restrict the returned objects by their fields."
    ),
    _param(
        "labelSelector", "query", "string", "A selector to restrict the returned objects by their labels."
    ),
    _param("limit", "query", "integer", "the maximum number of responses to return for a list call."),
    _param(
        "resourceVersion",
        "query",
        "string",
        "resourceVersion sets a constraint on what resource versions serve.",
    ),
    _param("resourceVersionMatch", "query", "string", "how resourceVersion is applied to list calls."),
    _param("timeoutSeconds", "query", "integer", "Timeout for the list/watch call."),
    _param("watch", "query", "boolean", "Watch for changes to the described resources."),
]
_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _json_content(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": OAS_PREFIX + ref}}}


def _responses(codes: Sequence[str], ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        code: {"description": _CODE_TEXT[code], "content": _json_content(ref)} for code in codes
    }
    out["401"] = {"description": "Unauthorized"}
    return out


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}


def _delete_responses(kind_ref: str) -> dict[str, Any]:
    """What a delete answers, as kube-apiserver does: a Success Status when the object is gone,
    else the object marked for deletion (202; 200 for a dry run). Kubernetes' own documents say
    Status for both."""
    out = _responses(["200", "202"], kind_ref)
    either = {"oneOf": [{"$ref": OAS_PREFIX + _STATUS}, {"$ref": OAS_PREFIX + kind_ref}]}
    out["200"]["content"] = {"application/json": {"schema": either}}
    return out


def _camel(text: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", text) if p)


class _OpenAPICache:
    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}
        self.hashes: dict[tuple[str, str], str] = {}
        self.index: dict[str, Any] | None = None


def _operations(
    rt: ResourceType, *, namespaced_path: bool, list_ref: str, tag: str
) -> dict[str, dict[str, Any]]:
    """The paths of one resource: collection, item and subresources."""
    gv_name = _camel(rt.group.split(".")[0] if rt.group else "core") + _camel(rt.version)
    scope = "Namespaced" if rt.namespaced else ""
    base = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    gvk = _gvk(rt)
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if namespaced_path else f"{base}/{rt.plural}"
    common = [_P_NAMESPACE, _P_PRETTY] if namespaced_path else [_P_PRETTY]
    kind_ref = rt.schema_ref

    def op(verb: str, action: str, what: str, description: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "tags": [tag],
            "description": description,
            "operationId": f"{verb}{gv_name}{scope}{rt.kind}{what}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }
        body.update(extra)
        return body

    write = [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION]
    kind_body = {"content": {"*/*": {"schema": {"$ref": OAS_PREFIX + kind_ref}}}, "required": True}
    patch_body = {
        "content": {t: {"schema": {"$ref": OAS_PREFIX + _PATCH}} for t in _PATCH_TYPES},
        "required": True,
    }
    delete_body = {"content": {"*/*": {"schema": {"$ref": OAS_PREFIX + _DELETE_OPTIONS}}}}
    paths: dict[str, dict[str, Any]] = {}
    verbs = set(rt.verbs)
    coll: dict[str, Any] = {"parameters": common}
    if "list" in verbs:
        coll["get"] = op(
            "list",
            "list",
            "",
            f"list or watch objects of kind {rt.kind}",
            parameters=_LIST_PARAMS,
            responses=_responses(["200"], list_ref),
        )
    if "create" in verbs:
        coll["post"] = op(
            "create",
            "post",
            "",
            f"create a {rt.kind}",
            parameters=write,
            requestBody=kind_body,
            responses=_responses(["200", "201", "202"], kind_ref),
        )
    if "delete" in verbs:
        coll["delete"] = op(
            "deleteCollection",
            "deletecollection",
            "",
            f"delete collection of {rt.kind}",
            parameters=[*_LIST_PARAMS[1:5], _P_DRY_RUN, _P_GRACE, _P_PROPAGATION],
            requestBody=delete_body,
            # what the server answers, as kube-apiserver does: the list of what it deleted
            # (Kubernetes' own documents say Status here, which its servers never send)
            responses=_responses(["200"], list_ref),
        )
    paths[collection] = coll
    item: dict[str, Any] = {"parameters": [_P_NAME, *common]}
    if "get" in verbs:
        item["get"] = op(
            "read", "get", "", f"read the specified {rt.kind}", responses=_responses(["200"], kind_ref)
        )
    if "update" in verbs:
        item["put"] = op(
            "replace",
            "put",
            "",
            f"replace the specified {rt.kind}",
            parameters=write,
            requestBody=kind_body,
            responses=_responses(["200", "201"], kind_ref),
        )
    if "patch" in verbs:
        item["patch"] = op(
            "patch",
            "patch",
            "",
            f"partially update the specified {rt.kind}",
            parameters=[*write, _P_FORCE],
            requestBody=patch_body,
            responses=_responses(["200", "201"], kind_ref),
        )
    if "delete" in verbs:
        item["delete"] = op(
            "delete",
            "delete",
            "",
            f"delete a {rt.kind}",
            parameters=[_P_DRY_RUN, _P_GRACE, _P_PROPAGATION],
            requestBody=delete_body,
            responses=_delete_responses(kind_ref),
        )
    paths[f"{collection}/{{name}}"] = item
    for sub in sorted(rt.subresources):
        if sub not in ("status", "scale"):
            continue
        ref = kind_ref if sub == "status" else _SCALE
        sub_gvk = gvk if sub == "status" else _SCALE_GVK
        what = _camel(sub)
        sub_body = {"content": {"*/*": {"schema": {"$ref": OAS_PREFIX + ref}}}, "required": True}
        paths[f"{collection}/{{name}}/{sub}"] = {
            "parameters": [_P_NAME, *common],
            "get": op(
                "read",
                "get",
                what,
                f"read {sub} of the specified {rt.kind}",
                responses=_responses(["200"], ref),
                **{"x-kubernetes-group-version-kind": sub_gvk},
            ),
            "put": op(
                "replace",
                "put",
                what,
                f"replace {sub} of the specified {rt.kind}",
                parameters=write,
                requestBody=sub_body,
                responses=_responses(["200", "201"], ref),
                **{"x-kubernetes-group-version-kind": sub_gvk},
            ),
            "patch": op(
                "patch",
                "patch",
                what,
                f"partially update {sub} of the specified {rt.kind}",
                parameters=[*write, _P_FORCE],
                requestBody=patch_body,
                responses=_responses(["200", "201"], ref),
                **{"x-kubernetes-group-version-kind": sub_gvk},
            ),
        }
    return paths


def _build_document(schemas: SchemaSet, scheme: Scheme, group: str, version: str) -> dict[str, Any]:
    types = sorted(scheme.in_group_version(group, version), key=lambda t: t.plural)
    if not types:
        raise KeyError(f"no resources in {group or 'core'}/{version}")
    tag = f"{group.split('.')[0] if group else 'core'}_{version}"
    paths: dict[str, Any] = {}
    synthetic: dict[str, dict[str, Any]] = {}
    wanted: list[str] = [_STATUS, _DELETE_OPTIONS, _WATCH_EVENT, _PATCH]
    for rt in types:
        prefix = rt.schema_ref.rpartition(".")[0]
        list_ref = f"{prefix}.{rt.list_kind_name}" if prefix else rt.list_kind_name
        if not schemas.has(list_ref):
            synthetic[list_ref] = {
                "description": f"{rt.list_kind_name} is a list of {rt.kind}.",
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "items": {"type": "array", "items": {"$ref": DEFS_PREFIX + rt.schema_ref}},
                    "kind": {"type": "string"},
                    "metadata": {"$ref": DEFS_PREFIX + _LIST_META},
                },
                "x-kubernetes-group-version-kind": [{**_gvk(rt), "kind": rt.list_kind_name}],
            }
        wanted += [rt.schema_ref, list_ref]
        if "scale" in rt.subresources:
            wanted.append(_SCALE)
        if rt.namespaced:
            paths.update(_operations(rt, namespaced_path=True, list_ref=list_ref, tag=tag))
            all_ns = _operations(rt, namespaced_path=False, list_ref=list_ref, tag=tag)
            collection = next(iter(all_ns))
            listing = {k: v for k, v in all_ns[collection].items() if k in ("parameters", "get")}
            if "get" in listing:
                op_id = listing["get"]["operationId"].replace("Namespaced", "", 1) + "ForAllNamespaces"
                listing["get"] = {**listing["get"], "operationId": op_id}
                paths[collection] = listing
        else:
            paths.update(_operations(rt, namespaced_path=False, list_ref=list_ref, tag=tag))
    components: dict[str, Any] = {}
    queue = list(dict.fromkeys(wanted))
    while queue:
        name = queue.pop()
        if name in components:
            continue
        refs: set[str] = set()
        raw = synthetic.get(name)
        if raw is None:
            try:
                raw = schemas.definition(name)
            except KeyError:
                raw = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        components[name] = _to_openapi(raw, refs)
        queue.extend(r for r in refs if r not in components)
    for rt in types:
        schema = components[rt.schema_ref]
        gvks = schema.get("x-kubernetes-group-version-kind")
        if not (isinstance(gvks, list) and _gvk(rt) in gvks):
            schema = dict(schema)
            schema["x-kubernetes-group-version-kind"] = [*(gvks if isinstance(gvks, list) else []), _gvk(rt)]
            components[rt.schema_ref] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": PINNED_KUBERNETES.split("-")[0]},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "authorization",
                    "description": "Bearer token authentication",
                }
            },
        },
        "security": [{"BearerToken": []}],
    }


_CACHES: weakref.WeakKeyDictionary[SchemaSet, weakref.WeakKeyDictionary[Scheme, _OpenAPICache]] = (
    weakref.WeakKeyDictionary()
)
_CACHES_LOCK = threading.Lock()


def _openapi_cache(scheme: Scheme, schemas: SchemaSet | None) -> tuple[SchemaSet, _OpenAPICache]:
    chosen = schemas if schemas is not None else official_schemas()
    with _CACHES_LOCK:
        per_scheme = _CACHES.setdefault(chosen, weakref.WeakKeyDictionary())
        cache = per_scheme.get(scheme)
        if cache is None:
            cache = _OpenAPICache()
            per_scheme[scheme] = cache
    return chosen, cache


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_document(
    scheme: Scheme, group: str, version: str, *, schemas: SchemaSet | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.0 document of one group-version (cached per scheme; do not mutate).

    Pass the server's ``schemas`` when its kinds use extra definitions; without them such kinds
    are published as free-form objects. Raises KeyError for a group-version the scheme lacks."""
    chosen, cache = _openapi_cache(scheme, schemas)
    key = (group, version)
    doc = cache.documents.get(key)
    if doc is None:
        doc = _build_document(chosen, scheme, group, version)
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        cache.hashes[key] = hashlib.sha512(canonical).hexdigest().upper()
        cache.documents[key] = doc
    return doc


def openapi_v3_hash(scheme: Scheme, group: str, version: str, *, schemas: SchemaSet | None = None) -> str:
    """The stable hash of :func:`openapi_v3_document` (what the index's ``?hash=`` carries)."""
    openapi_v3_document(scheme, group, version, schemas=schemas)
    return _openapi_cache(scheme, schemas)[1].hashes[(group, version)]


def openapi_v3_index(scheme: Scheme, *, schemas: SchemaSet | None = None) -> dict[str, Any]:
    """``/openapi/v3``: where each group-version's document is, with its hash (cached)."""
    _, cache = _openapi_cache(scheme, schemas)
    if cache.index is None:
        paths: dict[str, Any] = {}
        for group, version in scheme.group_versions():
            digest = openapi_v3_hash(scheme, group, version, schemas=schemas)
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
        cache.index = {"paths": paths}
    return cache.index


# --------------------------------------------------------------------------------------------------
# OpenAPI v2, for kubectl older than 1.28


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    length = len(payload)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(varint) + payload


def openapi_v2_protobuf(title: str) -> bytes:
    """A minimal OpenAPI v2 document in gnostic's protobuf encoding (``openapi_v2.Document``).

    kubectl up to 1.27 fetches ``/openapi/v2`` (protobuf only) before ``apply``; with no
    definitions in it, kubectl takes strategic-merge metadata from its compiled-in types for
    built-in kinds and uses JSON merge patches for others, and leaves validation to the server,
    which is what every newer kubectl does through OpenAPI v3.
    """
    info = _field(1, title.encode()) + _field(2, PINNED_KUBERNETES.split("-")[0].encode())
    return _field(1, b"2.0") + _field(2, info) + _field(8, b"")
