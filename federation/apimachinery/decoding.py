"""Decoding a request body against a compiled schema, as Kubernetes' Go decoder does.

Kubernetes decodes a body into Go structs: unknown fields are dropped (or, with
``fieldValidation=Strict``, rejected), a string where an int32 belongs is a 400, a JSON null
becomes the zero value (omitted; in a list or a map, the element's zero value: ``{}``, ``""``,
``0``, ``false``, so ``containers: [null]`` reads as one empty container), and a field Go always
writes (``required`` in the schema) is there after decoding, its zero value if unset.
:class:`Decoder` does the same in one walk over the object and its
:class:`~federation.apimachinery.schematree.SchemaNode` tree, and words its errors as the Go
decoder does (``json: cannot unmarshal string into Go struct field ReplicaSetSpec.spec.replicas of
type int32``). It checks types and formats only: whether a zero or an ``enum`` value is allowed is
validation, which happens later (strategies), as in Kubernetes. Pure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from federation.apimachinery.errors import ApiError, bad_request
from federation.apimachinery.schematree import ANY, ARRAY, MAP, OBJECT, SCALAR, SchemaNode

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


def _zero(node: SchemaNode) -> Any:
    """The JSON of the Go zero value of ``node``'s type, for a null where a list item or a map
    value belongs (None for a list, a map or anything, whose zero value is nil)."""
    if node.kind == OBJECT:
        return {}
    if node.kind == SCALAR:
        for json_type, zero in (("integer", 0), ("number", 0), ("string", ""), ("boolean", False)):
            if json_type in node.types:
                return zero
    return None


class Decoder:
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
                    if v is None:
                        value[i] = self.zero(item)
                        continue
                    if item.plain_text and type(v) is str:
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
                    if elem.plain_text and type(v) is str:
                        continue  # labels, annotations: the common case, kept cheap
                    if v is None:
                        value[k] = self.zero(elem)
                        continue
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
        for key in node.required:
            if key not in obj:
                self.fill(obj, key, fields[key][0])

    def fill(self, obj: dict[str, Any], key: str, node: SchemaNode) -> None:
        """Set a required field that is missing to its Go zero value, which Go always writes (an
        Event's ``involvedObject: {}``, a container's ``name: ""``), so an answer holds what the
        schema says it holds; validation then judges the zero. A time, a list or a map stays
        unset (Go writes null, which validation refuses where it matters)."""
        if node.kind == SCALAR and node.format == "date-time":
            return
        zero = self.zero(node)
        if zero is not None:
            obj[key] = zero

    def zero(self, node: SchemaNode) -> Any:
        """The Go zero value of ``node`` as JSON, with the required fields of an object filled."""
        zero = _zero(node)
        if node.kind == OBJECT:
            for key in node.required:
                self.fill(zero, key, node.fields[key][0])
        return zero

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
