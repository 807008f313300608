"""The kinds the federation API serves: the core kinds plus ``Cluster`` (federation.io/v1alpha1).

A Cluster names a member: ``spec.server`` (its API URL), ``spec.secretRef.name`` (a Secret in
``federation-system`` holding ``token`` and/or ``client.crt``/``client.key``, and ``ca.crt`` or
``insecure-skip-tls-verify``), and labels such as ``topology.kubernetes.io/region`` that cluster
selectors match. ``status.conditions`` is written by the health controller.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from federation.apimachinery import CORE_KINDS, Cause, Column, Obj, ResourceType, Strategy

CLUSTER_REF = "io.federation.v1alpha1.Cluster"


def _ready(obj: Obj) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status", "Unknown"))
    return "Unknown"


class ClusterStrategy(Strategy):
    has_generation = True
    has_status = True

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        server = spec.get("server")
        if not server:
            causes.append(Cause("spec.server", "Required value", "FieldValueRequired"))
        else:
            parts = urlsplit(str(server))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                causes.append(
                    Cause("spec.server", f'Invalid value: "{server}": must be an http or https URL')
                )
        ref = spec.get("secretRef")
        if ref is not None and not (isinstance(ref, dict) and ref.get("name")):
            causes.append(Cause("spec.secretRef.name", "Required value", "FieldValueRequired"))
        return causes

    def columns(self) -> list[Column]:
        return [
            Column("Server", "string", lambda o: (o.get("spec") or {}).get("server", "")),
            Column(
                "Region",
                "string",
                lambda o: ((o.get("metadata") or {}).get("labels") or {}).get(
                    "topology.kubernetes.io/region", ""
                ),
            ),
            Column("Ready", "string", _ready),
        ]


def _string() -> dict[str, Any]:
    return {"type": "string"}


CLUSTER_SCHEMAS: dict[str, dict[str, Any]] = {
    CLUSTER_REF: {
        "description": "A member Kubernetes cluster of the federation.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": _string(),
            "kind": _string(),
            "metadata": {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {"$ref": "#/$defs/io.federation.v1alpha1.ClusterSpec"},
            "status": {"$ref": "#/$defs/io.federation.v1alpha1.ClusterStatus"},
        },
        "x-kubernetes-group-version-kind": [
            {"group": "federation.io", "kind": "Cluster", "version": "v1alpha1"}
        ],
    },
    "io.federation.v1alpha1.ClusterSpec": {
        "type": "object",
        "properties": {
            "server": {"type": "string", "description": "URL of the member's Kubernetes API server."},
            "secretRef": {
                "type": "object",
                "description": "Secret in federation-system holding the credentials.",
                "properties": {"name": _string()},
            },
            "insecureSkipTLSVerify": {"type": "boolean"},
            "weight": {"type": "integer", "format": "int32", "description": "Default placement weight."},
        },
    },
    "io.federation.v1alpha1.ClusterStatus": {
        "type": "object",
        "properties": {
            "conditions": {
                "type": "array",
                "items": {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.Condition"},
                "x-kubernetes-list-map-keys": ["type"],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "type",
                "x-kubernetes-patch-strategy": "merge",
            },
            "kubernetesVersion": _string(),
            "capacity": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
}

CLUSTERS = ResourceType(
    "federation.io",
    "v1alpha1",
    "Cluster",
    "clusters",
    "cluster",
    False,
    CLUSTER_REF,
    ClusterStrategy(),
    subresources=frozenset({"status"}),
    admin_writes=True,
)

FEDERATION_KINDS: tuple[ResourceType, ...] = (*CORE_KINDS, CLUSTERS)
