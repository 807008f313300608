"""The Service kind of a simulated cluster (core/v1), as its API server defaults and checks it.

Beyond the official schema, the strategy does what Kubernetes does: a ClusterIP from the cluster's
own service range and node ports from 30000-32767 (both from :class:`~federation.sim.network.ClusterNetwork`),
kept across updates and immutable once set; ``status`` (``loadBalancer.ingress``) is written only
through ``/status`` (the simulator's load-balancer controller does it, see
:mod:`federation.sim.loadbalancers`). Tables print ``NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE``.

Each cluster has a Service kind of its own (:func:`services_type`), since its strategy allocates
from that cluster's ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from federation.apimachinery import Cause, Column, Obj, ResourceType, Strategy, dig, meta
from federation.sim.network import ClusterNetwork

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PROTOCOLS = ("TCP", "UDP", "SCTP")


def _service_ports(spec: dict[str, Any]) -> list[dict[str, Any]]:
    ports = spec.get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def _uses_node_ports(spec: dict[str, Any]) -> bool:
    if spec.get("type") == "NodePort":
        return True
    return spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False


class ServiceStrategy(Strategy):
    has_status = True

    def __init__(self, network: ClusterNetwork) -> None:
        self.network = network

    def _default(self, obj: Obj) -> dict[str, Any]:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return {}
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        for port in _service_ports(spec):
            port.setdefault("protocol", "TCP")
            if "targetPort" not in port and isinstance(port.get("port"), int):
                port["targetPort"] = port["port"]
        return spec

    def _allocate_node_ports(self, spec: dict[str, Any], old_spec: dict[str, Any] | None, owner: str) -> None:
        if not _uses_node_ports(spec):
            for port in _service_ports(spec):
                port.pop("nodePort", None)
            return
        previous = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
            for p in _service_ports(old_spec or {})
        }
        for port in _service_ports(spec):
            if port.get("nodePort"):
                if previous.get((port.get("port"), port.get("protocol"))) == port["nodePort"]:
                    continue
                port["nodePort"] = self.network.allocate_node_port(int(port["nodePort"]), owner=owner)
                continue
            kept = previous.get((port.get("port"), port.get("protocol")))
            port["nodePort"] = kept if isinstance(kept, int) else self.network.allocate_node_port(owner=owner)

    def prepare_for_create(self, obj: Obj) -> None:
        spec = self._default(obj)
        owner = str(meta(obj).get("name", ""))
        if spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        else:
            requested = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
            if requested == "None":
                spec["clusterIP"] = "None"
                spec["clusterIPs"] = ["None"]
            else:
                ip = self.network.allocate_ip(str(requested) if requested else None, owner=owner)
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            self._allocate_node_ports(spec, None, owner)
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        spec = self._default(new)
        old_spec = old.get("spec") or {}
        owner = str(meta(old).get("name", ""))
        if spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            return
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
        if not spec.get("clusterIP") and old_spec.get("type") == "ExternalName":
            ip = self.network.allocate_ip(owner=owner)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        self._allocate_node_ports(spec, old_spec, owner)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        kind = spec.get("type")
        if kind not in SERVICE_TYPES:
            supported = ", ".join(f'"{t}"' for t in SERVICE_TYPES)
            causes.append(
                Cause(
                    "spec.type",
                    f'Unsupported value: "{kind}": supported values: {supported}',
                    "FieldValueNotSupported",
                )
            )
            return causes
        if kind == "ExternalName":
            if not spec.get("externalName"):
                causes.append(Cause("spec.externalName", "Required value", "FieldValueRequired"))
            return causes
        ports = _service_ports(spec)
        headless = spec.get("clusterIP") == "None"
        if headless and kind != "ClusterIP":
            causes.append(
                Cause("spec.clusterIPs[0]", 'Invalid value: "None": may only be set for ClusterIP Services')
            )
        if not ports and not headless:
            causes.append(Cause("spec.ports", "Required value", "FieldValueRequired"))
        names: set[str] = set()
        for i, port in enumerate(ports):
            where = f"spec.ports[{i}]"
            number = port.get("port")
            if not isinstance(number, int) or not 1 <= number <= 65535:
                causes.append(
                    Cause(f"{where}.port", f"Invalid value: {number}: must be between 1 and 65535, inclusive")
                )
            if port.get("protocol") not in PROTOCOLS:
                supported = ", ".join(f'"{p}"' for p in PROTOCOLS)
                causes.append(
                    Cause(
                        f"{where}.protocol",
                        f'Unsupported value: "{port.get("protocol")}": supported values: {supported}',
                        "FieldValueNotSupported",
                    )
                )
            name = port.get("name")
            if len(ports) > 1 and not name:
                causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
            if name:
                if name in names:
                    causes.append(Cause(f"{where}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
                names.add(str(name))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        if (
            "ExternalName" not in (new_spec.get("type"), old_spec.get("type"))
            and old_spec.get("clusterIP")
            and new_spec.get("clusterIP") != old_spec.get("clusterIP")
        ):
            causes.append(Cause("spec.clusterIPs[0]", "Invalid value: may not change once set"))
        return causes

    def columns(self) -> list[Column]:
        return [
            Column("Type", "string", lambda o: dig(o, "spec", "type") or "ClusterIP"),
            Column("Cluster-IP", "string", lambda o: dig(o, "spec", "clusterIP") or "<none>"),
            Column("External-IP", "string", service_external_ip),
            Column("Port(s)", "string", service_ports_cell),
            Column("Selector", "string", service_selector_cell, priority=1),
        ]

    def field_labels(self) -> Mapping[str, Callable[[Obj], str | None]]:
        return {
            "spec.clusterIP": lambda o: dig(o, "spec", "clusterIP"),
            "spec.type": lambda o: dig(o, "spec", "type"),
        }


def service_external_ip(obj: Obj) -> str:
    spec = obj.get("spec") or {}
    kind = spec.get("type")
    if kind == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    external = list(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        for ingress in dig(obj, "status", "loadBalancer", "ingress") or []:
            if isinstance(ingress, dict):
                external.append(ingress.get("ip") or ingress.get("hostname") or "")
        return ",".join(e for e in external if e) or "<pending>"
    return ",".join(external) or "<none>"


def service_ports_cell(obj: Obj) -> str:
    cells = []
    for port in _service_ports(obj.get("spec") or {}):
        text = str(port.get("port"))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        cells.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(cells) or "<none>"


def service_selector_cell(obj: Obj) -> str:
    selector = dig(obj, "spec", "selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


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
        ServiceStrategy(network),
        short_names=("svc",),
        subresources=frozenset({"status"}),
        categories=("all",),
    )
