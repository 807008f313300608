"""The Node kind of a simulated cluster (core/v1): cluster-scoped, status written only through
``/status``, printed as ``NAME STATUS ROLES AGE VERSION`` (``-o wide`` adds the internal IP, OS image
and container runtime), and :func:`node_ready` as the scheduler reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from federation.apimachinery import AGE, Column, Obj, ResourceType, Strategy, dig, meta


def node_ready(obj: Obj) -> bool:
    for cond in dig(obj, "status", "conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def node_status_cell(obj: Obj) -> str:
    text = "Ready" if node_ready(obj) else "NotReady"
    if dig(obj, "spec", "unschedulable"):
        text += ",SchedulingDisabled"
    return text


def node_roles_cell(obj: Obj) -> str:
    roles = sorted(
        key.split("/", 1)[1]
        for key in (meta(obj).get("labels") or {})
        if key.startswith("node-role.kubernetes.io/")
    )
    return ",".join(r for r in roles if r) or "<none>"


def node_internal_ip(obj: Obj) -> str:
    for addr in dig(obj, "status", "addresses") or []:
        if isinstance(addr, dict) and addr.get("type") == "InternalIP":
            return str(addr.get("address", ""))
    return "<none>"


class NodeStrategy(Strategy):
    has_status = True

    def columns(self) -> list[Column]:
        return [
            Column("Status", "string", node_status_cell, "The status of the node"),
            Column("Roles", "string", node_roles_cell, "The roles of the node"),
            AGE,
            Column(
                "Version",
                "string",
                lambda o: dig(o, "status", "nodeInfo", "kubeletVersion") or "",
                "Kubelet Version",
            ),
            Column("Internal-IP", "string", node_internal_ip, "The node's internal IP", priority=1),
            Column(
                "OS-Image",
                "string",
                lambda o: dig(o, "status", "nodeInfo", "osImage") or "<unknown>",
                priority=1,
            ),
            Column(
                "Container-Runtime",
                "string",
                lambda o: dig(o, "status", "nodeInfo", "containerRuntimeVersion") or "<unknown>",
                priority=1,
            ),
        ]

    def field_labels(self) -> Mapping[str, Callable[[Obj], str | None]]:
        return {"spec.unschedulable": lambda o: "true" if dig(o, "spec", "unschedulable") else "false"}


NODES = ResourceType(
    "",
    "v1",
    "Node",
    "nodes",
    "node",
    False,
    "io.k8s.api.core.v1.Node",
    NodeStrategy(),
    short_names=("no",),
    subresources=frozenset({"status"}),
)
