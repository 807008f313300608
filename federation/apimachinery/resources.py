"""The kinds a server serves, described once.

A :class:`ResourceType` names a kind (group, version, plural, scope, subresources, the schema that
validates it) and carries its :class:`Strategy`: the per-kind hooks that the generic registry calls,
as Kubernetes' ``registry/rest`` strategies do. Discovery, OpenAPI, routing and tables are all
derived from these descriptions, so adding a kind is one entry, not edits across the code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from federation.apimachinery.errors import Cause

Obj = dict[str, Any]
"""A Kubernetes object as raw JSON (``apiVersion``, ``kind``, ``metadata``, ...)."""


@dataclass(frozen=True)
class Column:
    """One column of ``kubectl get`` output (a ``meta.k8s.io/v1`` Table column)."""

    name: str
    type: str
    cell: Callable[[Obj], Any]
    description: str = ""
    priority: int = 0


class Strategy:
    """Per-kind behaviour; the defaults suit a plain kind without spec/status split."""

    #: whether the kind has a ``spec`` whose changes bump ``metadata.generation``
    has_generation: bool = False
    #: whether a ``status`` stanza is written only through the ``/status`` subresource
    has_status: bool = False
    #: whether ``kubectl get`` shows AGE and NAME as usual (Events: LAST SEEN, and NAME only when wide)
    show_age: bool = True
    show_name: bool = True

    def prepare_for_create(self, obj: Obj) -> None:
        """Default and normalise a new object in place (after schema validation)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Normalise an update of the main resource in place (``status`` is kept by the registry)."""

    def validate(self, obj: Obj) -> list[Cause]:
        """Kind-specific checks the schema cannot express; empty means valid."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self.validate(new)

    def redact(self, obj: Obj) -> Obj:
        """What a reader without access to sensitive fields sees (Secrets hide ``data``)."""
        return obj

    def columns(self) -> list[Column]:
        """Columns for tables after NAME; the printer adds AGE before the wide (priority 1) ones
        unless this list places ``tables.AGE`` itself."""
        return []

    def field_labels(self) -> Mapping[str, Callable[[Obj], str | None]]:
        """Field selector keys beyond ``metadata.name`` / ``metadata.namespace``."""
        return {}


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    schema_ref: str
    """Definition name in the official schemas, e.g. ``io.k8s.api.apps.v1.ReplicaSet``."""
    strategy: Strategy = field(default_factory=Strategy, compare=False, hash=False)
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
    list_kind: str = ""
    #: top-level fields a storage must encrypt at rest (``data`` of a Secret)
    sealed_fields: tuple[str, ...] = ()
    #: annotations a storage must encrypt at rest: ``kubectl apply`` copies a whole Secret manifest,
    #: data included, into ``kubectl.kubernetes.io/last-applied-configuration``
    sealed_annotations: tuple[str, ...] = ()
    #: only admins create, change or delete objects of this kind
    admin_writes: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def qualified(self) -> str:
        """``replicasets.apps`` / ``secrets``: how Kubernetes names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
        return base


class Scheme:
    """The set of kinds one server serves, looked up by group/version/plural or by kind."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self.types: tuple[ResourceType, ...] = tuple(types)
        self._by_path = {(t.group, t.version, t.plural): t for t in self.types}
        self._by_kind = {(t.api_version, t.kind): t for t in self.types}

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((api_version, kind))

    def group_versions(self) -> list[tuple[str, str]]:
        """(group, version) pairs in a stable order: core first, then groups by name."""
        seen: dict[tuple[str, str], None] = {}
        for t in sorted(self.types, key=lambda t: (t.group != "", t.group, t.version)):
            seen[(t.group, t.version)] = None
        return list(seen)

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types if t.group == group and t.version == version]
