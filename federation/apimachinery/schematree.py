"""The compiled form of a schema: a small tree of :class:`SchemaNode`, with :class:`PatchMeta`.

:class:`~federation.apimachinery.schema.SchemaSet` compiles JSON Schema definitions into these
nodes once; the decoder (:mod:`federation.apimachinery.decoding`) and strategic merge patch
(:mod:`federation.apimachinery.patching`) walk them on the request path, so neither resolves a
``$ref`` or reads a JSON Schema keyword per request. Plain data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    that takes any string as it is (the most common value, which decoding skips at once).
    ``required``: the fields of an object Go always writes (no ``omitempty``), zero if unset."""

    __slots__ = (
        "elem",
        "fields",
        "format",
        "go_type",
        "kind",
        "plain_text",
        "preserve",
        "required",
        "struct",
        "types",
    )

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.fields: dict[str, tuple[SchemaNode, PatchMeta]] = {}
        self.elem: SchemaNode | None = None
        self.types: frozenset[str] = frozenset()
        self.format = ""
        self.plain_text = False
        self.preserve = False
        self.required: tuple[str, ...] = ()
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


ANY_NODE = SchemaNode(ANY)
"""The node of a value about which nothing is known (shared; never filled in)."""
