"""The Pod kind of a simulated cluster (core/v1), and how its components read a pod's state.

The strategy fills in what the API server, admission and kubelet default (restart policy, DNS
policy, pull policy, service account, QoS class, ...) and keeps a bound pod's node name from moving;
``status`` is written only through ``/status``. Tables print ``NAME READY STATUS RESTARTS AGE`` with
kubectl's rules for the STATUS column.

The readers below (:func:`pod_ready`, :func:`pod_active`, :func:`owned_by_replicaset`, ...) are what
the scheduler, the ReplicaSet controller and the load balancers agree a pod's state means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from federation.apimachinery import (
    Cause,
    Column,
    Obj,
    ResourceType,
    Strategy,
    default_pod_template_spec,
    dig,
    meta,
)

TERMINAL_PHASES = ("Succeeded", "Failed")


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owned_by_replicaset(pod: Obj) -> tuple[str, str] | None:
    """(name, uid) of the ReplicaSet controlling ``pod``, if one does."""
    ref = controller_ref(pod)
    if (
        ref is None
        or ref.get("kind") != "ReplicaSet"
        or not str(ref.get("apiVersion", "")).startswith("apps/")
    ):
        return None
    return str(ref.get("name", "")), str(ref.get("uid", ""))


def condition(obj: Obj, kind: str) -> dict[str, Any] | None:
    for cond in dig(obj, "status", "conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def pod_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_active(pod: Obj) -> bool:
    """Counts toward its ReplicaSet: not terminal and not being deleted."""
    return dig(pod, "status", "phase") not in TERMINAL_PHASES and not meta(pod).get("deletionTimestamp")


def qos_class(spec: dict[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    requests_or_limits = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            requests_or_limits = True
        for resource in ("cpu", "memory"):
            if resource not in limits or requests.get(resource, limits[resource]) != limits[resource]:
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_or_limits else "BestEffort"


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Fill in what the API server, admission and kubelet default on a Pod spec, in place."""
    default_pod_template_spec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)


def container_ready_counts(obj: Obj) -> tuple[int, int]:
    statuses = dig(obj, "status", "containerStatuses") or []
    total = len(dig(obj, "spec", "containers") or [])
    ready = sum(1 for s in statuses if isinstance(s, dict) and s.get("ready"))
    return ready, total


def pod_status_reason(obj: Obj) -> str:
    """What kubectl prints in a pod's STATUS column (its printer's rules, for the states we simulate)."""
    status = obj.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "Pending")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {} if isinstance(cs, dict) else {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if meta(obj).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def pod_restarts(obj: Obj) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in dig(obj, "status", "containerStatuses") or [])


class PodStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec if isinstance(spec, dict) else {})}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        spec = new.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        containers = dig(obj, "spec", "containers")
        if not containers:
            causes.append(Cause("spec.containers", "Required value", "FieldValueRequired"))
            return causes
        seen: set[str] = set()
        for i, c in enumerate(containers):
            if not c.get("name"):
                causes.append(Cause(f"spec.containers[{i}].name", "Required value", "FieldValueRequired"))
            elif c["name"] in seen:
                causes.append(
                    Cause(
                        f"spec.containers[{i}].name", f'Duplicate value: "{c["name"]}"', "FieldValueDuplicate"
                    )
                )
            else:
                seen.add(c["name"])
            if not c.get("image"):
                causes.append(Cause(f"spec.containers[{i}].image", "Required value", "FieldValueRequired"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        old_node = dig(old, "spec", "nodeName")
        if old_node and dig(new, "spec", "nodeName") != old_node:
            causes.append(
                Cause(
                    "spec.nodeName",
                    "Invalid value: field is immutable once the pod is bound",
                    "FieldValueForbidden",
                )
            )
        return causes

    def columns(self) -> list[Column]:
        def ready(o: Obj) -> str:
            r, t = container_ready_counts(o)
            return f"{r}/{t}"

        return [
            Column(
                "Ready", "string", ready, "The aggregate readiness state of this pod for accepting traffic."
            ),
            Column(
                "Status", "string", pod_status_reason, "The aggregate status of the containers in this pod."
            ),
            Column(
                "Restarts",
                "string",
                lambda o: str(pod_restarts(o)),
                "The number of times the containers were restarted.",
            ),
            Column(
                "IP",
                "string",
                lambda o: dig(o, "status", "podIP") or "<none>",
                "The pod's IP address.",
                priority=1,
            ),
            Column(
                "Node",
                "string",
                lambda o: dig(o, "spec", "nodeName") or "<none>",
                "The node the pod runs on.",
                priority=1,
            ),
        ]

    def field_labels(self) -> Mapping[str, Callable[[Obj], str | None]]:
        return {
            "spec.nodeName": lambda o: dig(o, "spec", "nodeName") or "",
            "spec.restartPolicy": lambda o: dig(o, "spec", "restartPolicy"),
            "spec.schedulerName": lambda o: dig(o, "spec", "schedulerName"),
            "spec.serviceAccountName": lambda o: dig(o, "spec", "serviceAccountName"),
            "status.phase": lambda o: dig(o, "status", "phase"),
            "status.podIP": lambda o: dig(o, "status", "podIP") or "",
            "status.nominatedNodeName": lambda o: dig(o, "status", "nominatedNodeName") or "",
        }


PODS = ResourceType(
    "",
    "v1",
    "Pod",
    "pods",
    "pod",
    True,
    "io.k8s.api.core.v1.Pod",
    PodStrategy(),
    short_names=("po",),
    subresources=frozenset({"status"}),
    categories=("all",),
)
