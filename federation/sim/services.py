"""The Service kind of a simulated cluster (core/v1): Kubernetes' Service plus this cluster's addresses.

The shared strategy (:mod:`federation.apimachinery.services`) defaults and checks a Service as
Kubernetes does; this one adds what a cluster allocates: a ClusterIP from the cluster's own service
range and node ports from 30000-32767 (both from :class:`~federation.sim.network.ClusterNetwork`),
kept across updates and immutable once set. ``status`` (``loadBalancer.ingress``) is written by the
simulator's load-balancer controller (:mod:`federation.sim.loadbalancers`).

Each cluster has a Service kind of its own (:func:`services_type`), since its strategy allocates
from that cluster's ranges.
"""

from __future__ import annotations

from typing import Any

from federation.apimachinery import ResourceType, ServiceStrategy, service_ports
from federation.sim.network import ClusterNetwork


def _uses_node_ports(spec: dict[str, Any]) -> bool:
    if spec.get("type") == "NodePort":
        return True
    return spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


class ClusterServiceStrategy(ServiceStrategy):
    """A Service of one simulated cluster: its ClusterIP and node ports from that cluster's ranges."""

    def __init__(self, network: ClusterNetwork) -> None:
        self.network = network

    def allocate(self, spec: dict[str, Any], old_spec: dict[str, Any] | None, owner: str) -> None:
        if old_spec is None:
            requested = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
            if requested == "None":
                spec["clusterIP"] = "None"
                spec["clusterIPs"] = ["None"]
            else:
                ip = self.network.allocate_ip(str(requested) if requested else None, owner=owner)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
        elif not spec.get("clusterIP") and old_spec.get("type") == "ExternalName":
            ip = self.network.allocate_ip(owner=owner)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        self._allocate_node_ports(spec, old_spec, owner)

    def _allocate_node_ports(self, spec: dict[str, Any], old_spec: dict[str, Any] | None, owner: str) -> None:
        if not _uses_node_ports(spec):
            for port in service_ports(spec):
                port.pop("nodePort", None)
            return
        previous = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
            for p in service_ports(old_spec or {})
        }
        for port in service_ports(spec):
            if port.get("nodePort"):
                if previous.get((port.get("port"), port.get("protocol"))) == port["nodePort"]:
                    continue
                port["nodePort"] = self.network.allocate_node_port(int(port["nodePort"]), owner=owner)
                continue
            kept = previous.get((port.get("port"), port.get("protocol")))
            port["nodePort"] = kept if isinstance(kept, int) else self.network.allocate_node_port(owner=owner)


def services_type(network: ClusterNetwork) -> ResourceType:
    """The Service kind of one cluster: its strategy allocates from that cluster's ranges."""
    return ResourceType(
        "",
        "v1",
        "Service",
        "services",
        "service",
        True,
        "io.k8s.api.core.v1.Service",
        ClusterServiceStrategy(network),
        short_names=("svc",),
        subresources=frozenset({"status"}),
        categories=("all",),
    )
