"""Objects to rows and back: the JSON text, the sealed columns and the key order of what is read.

A row of ``objects`` or ``changes`` keeps an object as ``body`` (JSONB, without
``metadata.resourceVersion``: that is the ``resource_version`` column) plus, for kinds with sealed
fields, ``sealed`` and ``key_id``. What :class:`RowCodec` guarantees:

* **Encoding happens before the transaction.** :meth:`RowCodec.encode` copies the caller's object
  (the caller's copy is never changed; the storage hands the copy back), produces the JSON text
  through :func:`~federation.apimachinery.objects.dump_json` and encrypts what must be sealed, so the
  writer's critical section holds no Python work of ours.
* **Sealed fields.** The kind's ``sealed_fields`` (a Secret's ``data``/``stringData``) and its
  ``sealed_annotations`` are removed from ``body`` and stored AES-GCM encrypted in ``sealed``
  (associated data: the object's identity, so a row copied under another name does not decrypt)
  with their ``key_id``. :meth:`RowCodec.decode` puts them back. A row that cannot be decrypted
  fails the read with a 500 (:class:`~federation.apimachinery.errors.InternalError`), or, for an
  object being or already deleted, leaves them out: a lost key must not stop anyone from deleting
  what it sealed, nor stall the watches after it.
* **Key order.** JSONB sorts keys by length; objects read back list the conventional keys first
  (``apiVersion``, ``kind``, ``metadata``, ...) as the Kubernetes API does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from psycopg.rows import TupleRow

from federation.apimachinery import (
    Change,
    EventType,
    Obj,
    ResourceType,
    copy_json,
    dump_json,
    internal,
    labels_of,
    meta,
    name_of,
    namespace_of,
)
from federation.store.sealing import Sealer, SealingError, identity_aad

_logger = logging.getLogger(__name__)

SEALED_ANNOTATIONS = "\u0000annotations"
"""Key, in a row's sealed JSON, of the sealed annotations (no field name can start with NUL)."""

_TOP_ORDER = ("apiVersion", "kind", "metadata", "spec", "status")
_META_ORDER = (
    "name", "generateName", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
    "finalizers",
)  # fmt: skip


def compact_json(value: Any) -> str:
    """Compact JSON text for a ``jsonb`` parameter."""
    return dump_json(value).decode()


def _ordered(obj: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """``obj`` with the conventional keys first: JSONB keeps keys sorted by length, which reads oddly."""
    out = {k: obj[k] for k in order if k in obj}
    if len(out) != len(obj):
        out.update((k, v) for k, v in obj.items() if k not in out)
    return out


class Row:
    """A write's parameters, computed before the transaction (JSON text, ciphertext), and the
    stored copy of the object, which the storage hands back once the version is known."""

    __slots__ = ("obj", "params")

    def __init__(self, obj: Obj, params: dict[str, Any]) -> None:
        self.obj = obj
        self.params = params


class RowCodec:
    """Encodes objects into row parameters and decodes rows into objects, sealing with ``sealer``."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def encode(self, rt: ResourceType, obj: Obj) -> Row:
        stored: Obj = copy_json(obj)
        metadata = meta(stored)
        namespace, name = namespace_of(stored), name_of(stored)
        body = {k: v for k, v in stored.items() if k not in rt.sealed_fields}
        body["metadata"] = {k: v for k, v in metadata.items() if k != "resourceVersion"}
        secret: dict[str, Any] = {f: stored[f] for f in rt.sealed_fields if f in stored}
        annotations = metadata.get("annotations")
        if rt.sealed_annotations and isinstance(annotations, dict):
            hidden = {k: annotations[k] for k in rt.sealed_annotations if k in annotations}
            if hidden:
                body["metadata"]["annotations"] = {k: v for k, v in annotations.items() if k not in hidden}
                secret[SEALED_ANNOTATIONS] = hidden
        sealed: bytes | None = None
        key_id: str | None = None
        body_json = compact_json(body)
        secret_bytes = compact_json(secret).encode() if secret else b""
        if secret:
            aad = identity_aad(rt.group, rt.plural, namespace, name)
            key_id, sealed = self._sealer.seal(secret_bytes, aad=aad)
        uid = metadata.get("uid")
        params = {
            "group": rt.group,
            "plural": rt.plural,
            "namespace": namespace,
            "name": name,
            "uid": str(uid) if uid else None,
            "labels": compact_json(labels_of(stored)),
            "body": body_json,
            "sealed": sealed,
            "key_id": key_id,
        }
        return Row(stored, params)

    def decode(
        self,
        group: str,
        plural: str,
        namespace: str,
        name: str,
        version: int,
        body: Obj,
        sealed: bytes | None,
        key_id: str | None,
        *,
        lenient: bool = False,
    ) -> Obj:
        """The object of a row. Sealed fields that cannot be decrypted fail the read (500), or,
        ``lenient`` (for an object that is being or has been deleted), are left out."""
        if sealed is not None and key_id is not None:
            try:
                plain = self._sealer.unseal(key_id, sealed, aad=identity_aad(group, plural, namespace, name))
            except SealingError as exc:
                where = f"{plural}.{group}" if group else plural
                _logger.error(
                    "cannot unseal %s %s/%s at version %d: %s", where, namespace, name, version, exc
                )
                if not lenient:
                    raise internal(f"stored data of {where} {namespace}/{name} cannot be decrypted") from exc
            else:
                restored = json.loads(plain)
                hidden = restored.pop(SEALED_ANNOTATIONS, None)
                body.update(restored)
                if hidden:
                    body.setdefault("metadata", {}).setdefault("annotations", {}).update(hidden)
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            metadata["resourceVersion"] = str(version)
            body["metadata"] = _ordered(metadata, _META_ORDER)
        else:
            body["metadata"] = {"resourceVersion": str(version)}
        return _ordered(body, _TOP_ORDER)

    def change(self, row: TupleRow) -> Change:
        """The watch cache's entry for a ``changes`` row (columns as in ``CHANGE_COLUMNS``)."""
        version, group, plural, namespace, name, kind, body, sealed, key_id = row
        event_type: EventType = kind
        obj = self.decode(
            group, plural, namespace, name, version, body, sealed, key_id, lenient=event_type == "DELETED"
        )
        return Change((group, plural), namespace, event_type, obj, version)
