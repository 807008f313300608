"""The ``/scale`` subresource: an object's replicas seen as an ``autoscaling/v1`` Scale.

``kubectl scale`` and autoscalers read and write a Scale, not the object itself. What a Scale shows
(``spec.replicas``, ``status.replicas`` and the selector as text) and what a written one may say
(a non-negative integer ``spec.replicas``; any other field is ignored, as Kubernetes does) are
here. Writing it back into the object, with the same retries and preconditions as any
read-modify-write, is the registry's (:meth:`~federation.apimachinery.registry.Registry.update_scale`).
Pure.
"""

from __future__ import annotations

from typing import Any

from federation.apimachinery.errors import Cause, bad_request, invalid
from federation.apimachinery.objects import meta
from federation.apimachinery.resources import Obj
from federation.apimachinery.selectors import label_selector_from_object

SCALE_SCHEMA_REF = "io.k8s.api.autoscaling.v1.Scale"
"""The schema a strategic merge patch of ``/scale`` follows."""


def scale_of(obj: Obj) -> Obj:
    """The Scale of ``obj`` (a ReplicaSet, say)."""
    m = meta(obj)
    selector = (obj.get("spec") or {}).get("selector") or {}
    try:
        selector_text = str(label_selector_from_object(selector))
    except ValueError:
        selector_text = ""
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in m
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0), "selector": selector_text},
    }


def requested_replicas(old: Obj, scale: Any) -> int:
    """The ``spec.replicas`` a Scale written over ``old`` asks for: 400 when it is no Scale, 422
    Invalid when the number is missing, not an integer or negative."""
    if not isinstance(scale, dict) or scale.get("kind", "Scale") != "Scale":
        raise bad_request("expected a Scale object")
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise invalid(
            "Scale",
            meta(old)["name"],
            [Cause("spec.replicas", "Required value: must be an integer", "FieldValueRequired")],
            "autoscaling",
        )
    if replicas < 0:
        raise invalid(
            "Scale",
            meta(old)["name"],
            [Cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
            "autoscaling",
        )
    return replicas
