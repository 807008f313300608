"""The kinds one simulated member cluster serves, as one :class:`~federation.apimachinery.resources.Scheme`.

The shared kinds of :mod:`federation.apimachinery.kinds` (Namespace, Secret, Event, ReplicaSet) plus
the ones only a member cluster has, each in a module of its own: Node (:mod:`federation.sim.nodes`),
Pod (:mod:`federation.sim.pods`) and Service (:mod:`federation.sim.services`, whose addresses come
from the cluster's :class:`~federation.sim.network.ClusterNetwork`). Each kind validates against its
official schema (``io.k8s.api.core.v1.*``) in the shared server; the strategies add what Kubernetes
does beyond the schema.
"""

from __future__ import annotations

from federation.apimachinery import CORE_KINDS, Scheme
from federation.sim.network import ClusterNetwork
from federation.sim.nodes import NODES
from federation.sim.pods import PODS
from federation.sim.services import services_type


def cluster_scheme(network: ClusterNetwork) -> Scheme:
    """Everything one simulated cluster serves: the shared kinds plus Node, Pod and its Service kind."""
    return Scheme((*CORE_KINDS, NODES, PODS, services_type(network)))
