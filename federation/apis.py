"""Federation's own API (group ``federation.io``): its kinds and the annotations and labels it reads.

Everything that names a federation concept lives here, once, for every layer that needs it: the API
server serves these kinds, the controllers and the traffic controller read them, ``fedctl`` prints
them, ``scheduling`` and ``members`` parse what they name. The simulated member clusters never import
this module (an import-linter contract): a member cluster knows nothing of the federation.

The kinds the federation API serves are the core kinds, Services, and ``Cluster`` and ``Placement``
(federation.io/v1alpha1).

A Cluster names a member: ``spec.server`` (its API URL), ``spec.secretRef.name`` (a Secret in
``federation-system`` holding ``token`` and/or ``client.crt``/``client.key``, and ``ca.crt`` or
``insecure-skip-tls-verify``), and labels such as ``topology.kubernetes.io/region`` that cluster
selectors match. ``status.conditions`` is written by the health controller.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from federation.apimachinery import CORE_KINDS, SERVICES, Cause, Column, Obj, ResourceType, Strategy

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
FEDERATED_UID_ANNOTATION = "federation.io/federated-uid"
"""On a member copy: the uid of the federated object it was made from."""
DESIRED_HASH_ANNOTATION = "federation.io/desired-hash"
"""On a member copy: a digest of what the federation last wrote, so a hand edit shows as drift."""
ADOPT_ANNOTATION = "federation.io/adopt"
"""``"true"`` on a federated object: take over member objects of its name the federation did not make."""
FOLLOW_WORKLOADS_ANNOTATION = "federation.io/follow-workloads"
"""``"true"`` on a federated Service: only the clusters that run the ReplicaSets it selects get it
(else every eligible cluster does, as with Secrets)."""
PROPAGATION_FINALIZER = "federation.io/propagation"
"""Held on a federated object until its member copies are removed."""


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
            Column("Version", "string", lambda o: (o.get("status") or {}).get("kubernetesVersion", "")),
            Column(
                "Nodes",
                "string",
                lambda o: ((o.get("status") or {}).get("capacity") or {}).get("nodes", ""),
                priority=1,
            ),
            Column(
                "Pods",
                "string",
                lambda o: ((o.get("status") or {}).get("capacity") or {}).get("pods", ""),
                "Allocatable pods on the schedulable nodes.",
                priority=1,
            ),
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
            "unschedulable": {
                "type": "boolean",
                "description": "Cordoned: nothing new is placed here; what runs here stays, except the "
                "replicas of ReplicaSets that rebalance, which move to the other clusters.",
            },
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

# -- Placement: where one federated object goes, and what each member reports (Karmada's
# ResourceBinding). Written by the controllers; people read it with kubectl.

PLACEMENT_REF = "io.federation.v1alpha1.Placement"


def placement_name(kind: str, name: str) -> str:
    """``web-replicaset``: the Placement of the federated ``kind`` named ``name`` (as Karmada names
    its bindings); it lives in the object's namespace (a Namespace's own: in itself)."""
    return f"{name}-{kind.lower()}"


def _placement_clusters(obj: Obj) -> str:
    spec_clusters = {c.get("name"): c for c in (obj.get("spec") or {}).get("clusters") or []}
    reported = {c.get("name"): c for c in (obj.get("status") or {}).get("clusters") or []}
    cells = []
    for name in sorted(set(spec_clusters) | set(reported), key=str):
        planned = spec_clusters.get(name) or {}
        seen = reported.get(name) or {}
        state = str(seen.get("state", "Pending"))
        if "trafficShare" in seen:
            cell = f"{name}={seen['trafficShare']}"
        elif "replicas" in planned:
            ready = seen.get("readyReplicas", 0) if state != "Stale" else "?"
            cell = f"{name}={ready}/{planned['replicas']}"
        else:
            cell = f"{name}"
        if state not in ("Ready", "Current"):
            cell += f"({state})"
        cells.append(cell)
    return " ".join(cells)


class PlacementStrategy(Strategy):
    has_generation = True
    has_status = True

    def columns(self) -> list[Column]:
        return [
            Column("Kind", "string", lambda o: ((o.get("spec") or {}).get("resource") or {}).get("kind", "")),
            Column(
                "Desired",
                "string",
                lambda o: "" if (o.get("spec") or {}).get("replicas") is None else o["spec"]["replicas"],
            ),
            Column(
                "Ready",
                "string",
                lambda o: (
                    ""
                    if (o.get("spec") or {}).get("replicas") is None
                    else (o.get("status") or {}).get("readyReplicas", 0)
                ),
            ),
            Column("Unschedulable", "string", lambda o: (o.get("spec") or {}).get("unschedulable", "")),
            Column("Clusters", "string", _placement_clusters, "Ready/desired replicas per cluster."),
        ]


_int = {"type": "integer", "format": "int32"}

PLACEMENT_SCHEMAS: dict[str, dict[str, Any]] = {
    PLACEMENT_REF: {
        "description": "Where a federated object is placed, and what each member cluster reports of it.",
        "type": "object",
        "properties": {
            "apiVersion": _string(),
            "kind": _string(),
            "metadata": {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {"$ref": "#/$defs/io.federation.v1alpha1.PlacementSpec"},
            "status": {"$ref": "#/$defs/io.federation.v1alpha1.PlacementStatus"},
        },
        "x-kubernetes-group-version-kind": [
            {"group": "federation.io", "kind": "Placement", "version": "v1alpha1"}
        ],
    },
    "io.federation.v1alpha1.PlacementSpec": {
        "type": "object",
        "properties": {
            "resource": {
                "type": "object",
                "description": "The federated object.",
                "properties": {
                    "apiVersion": _string(),
                    "kind": _string(),
                    "namespace": _string(),
                    "name": _string(),
                    "uid": _string(),
                },
            },
            "replicas": {**_int, "description": "The federated ReplicaSet's spec.replicas."},
            "unschedulable": {**_int, "description": "Replicas no eligible cluster has room for."},
            "clusters": {
                "type": "array",
                "description": "The plan: each eligible cluster, with its share of the replicas.",
                "items": {
                    "type": "object",
                    "properties": {"name": _string(), "replicas": _int},
                },
            },
            "excluded": {
                "type": "array",
                "description": "Clusters that get nothing, and why (Offline, Cordoned, ...).",
                "items": {"type": "object", "properties": {"name": _string(), "reason": _string()}},
            },
            "error": {**_string(), "description": "Why no plan could be made (a bad annotation)."},
        },
    },
    "io.federation.v1alpha1.PlacementStatus": {
        "type": "object",
        "properties": {
            "replicas": _int,
            "readyReplicas": _int,
            "availableReplicas": _int,
            "clusters": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": _string(),
                        "state": {
                            **_string(),
                            "description": "Ready, Progressing, Pending, Stale (the member cannot be "
                            "reached: the counts are as last seen), Conflict, Failed or Deleting.",
                        },
                        "desiredReplicas": _int,
                        "replicas": _int,
                        "readyReplicas": _int,
                        "availableReplicas": _int,
                        "unschedulableReplicas": _int,
                        "observedGeneration": {"type": "integer", "format": "int64"},
                        "lastObservedTime": {**_string(), "format": "date-time"},
                        "lastError": _string(),
                        "address": {**_string(), "description": "A Service's regional address (host:port)."},
                        "trafficWeight": {
                            **_int,
                            "description": "A Service's weight in the global load balancer (its ready pods).",
                        },
                        "trafficShare": {**_string(), "description": "The weight as a share of the traffic."},
                        "trafficReason": {**_string(), "description": "Why the weight is 0."},
                    },
                },
            },
        },
    },
}

PLACEMENTS = ResourceType(
    GROUP,
    VERSION,
    "Placement",
    "placements",
    "placement",
    True,
    PLACEMENT_REF,
    PlacementStrategy(),
    short_names=("pl",),
    subresources=frozenset({"status"}),
)

FEDERATION_KINDS: tuple[ResourceType, ...] = (*CORE_KINDS, SERVICES, CLUSTERS, PLACEMENTS)
FEDERATION_SCHEMAS: dict[str, dict[str, Any]] = {**CLUSTER_SCHEMAS, **PLACEMENT_SCHEMAS}
