"""What a member cluster should hold of a federated object, and whether what it holds is that.

Pure functions, no I/O (DESIGN.md "Propagation"; property-tested in tests/unit/test_desired.py):

* :func:`member_object` builds the member copy fresh from the federated object (never by changing
  what was read): the user's labels and annotations, the kind's payload (a Secret's ``type`` and
  ``data``, a ReplicaSet's ``spec`` with this cluster's share of the replicas, a Service's
  ``spec``), and the federation's marks: the ``federation.io/managed-by`` label, the federated
  object's uid, and a digest of the rest (``federation.io/desired-hash``). A ReplicaSet's pod
  template carries the managed-by label too, so the member's pods can be watched by it (their
  scheduling tells how much room a member has).
* :func:`is_current` says whether a member copy already is what :func:`member_object` asks for. A
  member adds what it defaults (a container's ``imagePullPolicy``, a ``status``), so the comparison
  is "the desired fields are there with the desired values", except where an extra entry changes
  behaviour: a Secret's ``data`` and a ReplicaSet's ``replicas`` must match exactly. A Service's
  copy leaves out what each member allocates for itself (ClusterIP, node ports).
* :func:`is_ours` tells a copy the federation made (the label and the uid) from an object of the
  same name that someone else made, which the federation never overwrites unless asked to adopt it.
* :func:`was_edited` tells drift (someone changed the copy after the federation wrote it: the digest
  is the one of the current desired object, yet the content differs) from a change of the federated
  object (the digest differs)."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from federation.apimachinery import Obj, copy_json, meta
from federation.apis import DESIRED_HASH_ANNOTATION, FEDERATED_UID_ANNOTATION, MANAGED_BY_LABEL

MANAGER: Final = "federation"
"""The value of the managed-by label on every member copy."""

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_NOT_COPIED_ANNOTATIONS = frozenset({LAST_APPLIED, DESIRED_HASH_ANNOTATION, FEDERATED_UID_ANNOTATION})
"""kubectl's record of the federated apply (it holds a Secret's data in clear) stays in the
federation; the federation's own marks are set fresh."""

_EXACT_FIELDS: Final = {"Secret": ("data", "type"), "ReplicaSet": ()}
_ALLOCATED_BY_MEMBER: Final = ("clusterIP", "clusterIPs", "healthCheckNodePort", "loadBalancerIP")


def digest(obj: Obj) -> str:
    """A short stable digest of a JSON object (key order does not matter)."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def member_object(federated: Obj, *, replicas: int | None = None) -> Obj:
    """The member copy of ``federated`` (a Namespace, Secret or ReplicaSet as stored in the
    federation); ``replicas``: this cluster's share, for a ReplicaSet."""
    kind = str(federated.get("kind", ""))
    m = federated.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (m.get("labels") or {}).items()}
    labels[MANAGED_BY_LABEL] = MANAGER
    annotations = {
        str(k): str(v) for k, v in (m.get("annotations") or {}).items() if k not in _NOT_COPIED_ANNOTATIONS
    }
    metadata: dict[str, Any] = {"name": m.get("name"), "labels": labels}
    if m.get("namespace") and kind != "Namespace":
        metadata["namespace"] = m["namespace"]
    body: Obj = {"apiVersion": federated.get("apiVersion"), "kind": kind, "metadata": metadata}
    if kind == "Secret":
        body["type"] = federated.get("type") or "Opaque"
        body["data"] = dict(federated.get("data") or {})
        if federated.get("immutable") is not None:
            body["immutable"] = federated["immutable"]
    elif kind == "ReplicaSet":
        spec = _copy(federated.get("spec") or {})
        spec["replicas"] = int(replicas if replicas is not None else spec.get("replicas", 1))
        template = spec.setdefault("template", {})
        template_meta = template.setdefault("metadata", {})
        template_labels = template_meta.setdefault("labels", {})
        template_labels[MANAGED_BY_LABEL] = MANAGER
        body["spec"] = spec
    elif kind == "Service":
        spec = _copy(federated.get("spec") or {})
        for allocated in _ALLOCATED_BY_MEMBER:  # each member gives its copy addresses of its own
            spec.pop(allocated, None)
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.pop("nodePort", None)
        body["spec"] = spec
    annotations[FEDERATED_UID_ANNOTATION] = str(m.get("uid", ""))
    annotations[DESIRED_HASH_ANNOTATION] = digest(
        {**body, "metadata": {**metadata, "annotations": annotations}}
    )
    metadata["annotations"] = annotations
    return body


def _copy(value: Any) -> Any:
    return copy_json(value)


def is_ours(obj: Obj, *, uid: str | None = None) -> bool:
    """Made by the federation (the managed-by label), and from the object of ``uid`` when given."""
    m = obj.get("metadata") or {}
    if (m.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGER:
        return False
    return uid is None or (m.get("annotations") or {}).get(FEDERATED_UID_ANNOTATION) == uid


def federated_uid(obj: Obj) -> str:
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(FEDERATED_UID_ANNOTATION, ""))


def _contains(current: Any, desired: Any) -> bool:
    """Whether ``current`` holds everything ``desired`` says (extra defaulted keys allowed)."""
    if isinstance(desired, dict):
        if not isinstance(current, dict):
            return False
        return all(key in current and _contains(current[key], value) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(current, list) or len(current) != len(desired):
            return False
        return all(_contains(c, d) for c, d in zip(current, desired, strict=True))
    return bool(current == desired)


def is_current(current: Obj, desired: Obj) -> bool:
    """Whether the member copy ``current`` already is ``desired`` (see the module docstring)."""
    kind = str(desired.get("kind", ""))
    for name in _EXACT_FIELDS.get(kind, ()):
        if (current.get(name) or None) != (desired.get(name) or None):
            return False
    if kind == "ReplicaSet" and (current.get("spec") or {}).get("replicas") != desired["spec"]["replicas"]:
        return False
    cm, dm = current.get("metadata") or {}, desired["metadata"]
    if not _contains(cm.get("labels") or {}, dm.get("labels") or {}):
        return False
    if not _contains(cm.get("annotations") or {}, dm.get("annotations") or {}):
        return False
    return "spec" not in desired or _contains(current.get("spec") or {}, desired["spec"])


def was_edited(current: Obj, desired: Obj) -> bool:
    """Drift: the copy carries the digest of ``desired`` (so the federation wrote this very
    version) and yet is not current (so someone changed it since)."""
    written = ((current.get("metadata") or {}).get("annotations") or {}).get(DESIRED_HASH_ANNOTATION)
    return written == meta(desired)["annotations"][DESIRED_HASH_ANNOTATION] and not is_current(
        current, desired
    )


def for_update(desired: Obj, current: Obj) -> Obj:
    """``desired`` as a replacement of ``current``: its resourceVersion, and what the member set on
    its own that the federation does not manage (a ReplicaSet's status is the member's)."""
    body: Obj = _copy(desired)
    meta(body)["resourceVersion"] = meta(current).get("resourceVersion")
    if "status" in current:
        body["status"] = _copy(current["status"])
    return body
