"""Federation's own API (group ``federation.io``): its kinds and the annotations and labels it reads.

Everything that names a federation concept lives here, once, for every layer that needs it: the API
server serves these kinds, the controllers and the traffic controller read them, ``fedctl`` prints
them, ``scheduling`` and ``members`` parse what they name. The simulated member clusters never import
this module (an import-linter contract): a member cluster knows nothing of the federation.

The kinds the federation API serves are the core kinds plus ``Cluster`` (federation.io/v1alpha1).

A Cluster names a member: ``spec.server`` (its API URL), ``spec.secretRef.name`` (a Secret in
``federation-system`` holding ``token`` and/or ``client.crt``/``client.key``, and ``ca.crt`` or
``insecure-skip-tls-verify``), and labels such as ``topology.kubernetes.io/region`` that cluster
selectors match. ``status.conditions`` is written by the health controller.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from federation.apimachinery import CORE_KINDS, Cause, Column, Obj, ResourceType, Strategy

GROUP = "federation.io"
VERSION = "v1alpha1"
CLUSTER_REF = "io.federation.v1alpha1.Cluster"

SYSTEM_NAMESPACE = "federation-system"
"""Holds cluster credentials: hidden from and protected against all but admins, never propagated."""

# -- labels and annotations (DESIGN.md "Placement" and "Propagation") ----------------------------------

MANAGED_BY_LABEL = "federation.io/managed-by"
"""On every object the federation creates in a member cluster; member informers select by it."""
REPLICA_SET_PREFERENCES = "federation.kubernetes.io/replica-set-preferences"
"""JSON ``{"rebalance": bool, "clusters": {"<cluster or *>": {"weight", "minReplicas", "maxReplicas"}}}``."""
CLUSTER_SELECTOR = "federation.alpha.kubernetes.io/cluster-selector"
"""JSON list of ``{"key", "operator": In|NotIn|Exists|DoesNotExist|Gt|Lt, "values"}`` over Cluster labels."""
REGION_LABEL = "topology.kubernetes.io/region"


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
            try:
                parts = urlsplit(str(server))
                hostname = parts.hostname
            except ValueError:  # "http://[::1": urlsplit refuses what no client could use either
                hostname = None
            if not hostname or parts.scheme not in ("http", "https"):
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
                lambda o: ((o.get("metadata") or {}).get("labels") or {}).get(REGION_LABEL, ""),
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
    GROUP,
    VERSION,
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
