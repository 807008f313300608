"""The Service kind (core/v1) as Kubernetes defaults and checks it, for every server here.

Beyond the official schema: the defaults Kubernetes fills in (type ClusterIP, session affinity,
protocols, target ports, ...), the checks it makes (type, ports, names, an immutable ClusterIP), and
the table kubectl prints (``NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE``; EXTERNAL-IP is the
LoadBalancer's ``status.loadBalancer.ingress``). ``status`` is written only through ``/status``.

The federation serves :data:`SERVICES` as is: a federated Service gets no ClusterIP or node ports
of its own (each member allocates its own for its copy) and, for type LoadBalancer, the global
address in its status. A simulated member cluster's Service kind (``federation.sim.services``) adds
the allocation from that cluster's ranges through :meth:`ServiceStrategy.allocate`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from federation.apimachinery.errors import Cause
from federation.apimachinery.objects import dig, meta
from federation.apimachinery.resources import Column, Obj, ResourceType, Strategy

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PROTOCOLS = ("TCP", "UDP", "SCTP")


def service_ports(spec: dict[str, Any]) -> list[dict[str, Any]]:
    ports = spec.get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def _unsupported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    """Kubernetes' refusal of a value outside a fixed set."""
    listed = ", ".join(f'"{v}"' for v in supported)
    return Cause(field, f'Unsupported value: "{value}": supported values: {listed}', "FieldValueNotSupported")


_REASON: Final = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
CONDITION_STATUSES: Final = ("True", "False", "Unknown")


def condition_causes(conditions: Any, *, where: str = "status.conditions") -> list[Cause]:
    """What Kubernetes refuses in ``metav1.Condition``s (ValidateConditions): each needs a type
    (once), a status of True, False or Unknown, a lastTransitionTime and a CamelCase reason; a
    message of at most 32768 characters, an observedGeneration not below 0."""
    if not isinstance(conditions, list):
        return []
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, cond in enumerate(conditions):
        at = f"{where}[{i}]"
        if not isinstance(cond, dict):
            continue
        kind = cond.get("type")
        if not kind:
            causes.append(Cause(f"{at}.type", "Required value", "FieldValueRequired"))
        elif kind in seen:
            causes.append(Cause(f"{at}.type", f'Duplicate value: "{kind}"', "FieldValueDuplicate"))
        else:
            seen.add(str(kind))
        if cond.get("status") not in CONDITION_STATUSES:
            causes.append(_unsupported(f"{at}.status", cond.get("status"), CONDITION_STATUSES))
        if not cond.get("lastTransitionTime"):
            causes.append(Cause(f"{at}.lastTransitionTime", "Required value", "FieldValueRequired"))
        reason = cond.get("reason")
        if not reason:
            causes.append(Cause(f"{at}.reason", "Required value", "FieldValueRequired"))
        elif not isinstance(reason, str) or len(reason) > 1024 or not _REASON.match(reason):
            causes.append(Cause(f"{at}.reason", f'Invalid value: "{reason}": a CamelCase reason'))
        if isinstance(cond.get("message"), str) and len(cond["message"]) > 32768:
            causes.append(
                Cause(f"{at}.message", "Too long: may not be more than 32768 bytes", "FieldValueTooLong")
            )
        generation = cond.get("observedGeneration")
        if isinstance(generation, int) and generation < 0:
            causes.append(
                Cause(f"{at}.observedGeneration", "Invalid value: must be greater than or equal to 0")
            )
    return causes


class ServiceStrategy(Strategy):
    """A Service as Kubernetes defaults and checks it, without the addresses a cluster allocates
    (a member cluster's strategy adds its ClusterIP and node ports: :meth:`allocate`)."""

    has_status = True

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
        for port in service_ports(spec):
            port.setdefault("protocol", "TCP")
            if "targetPort" not in port and isinstance(port.get("port"), int):
                port["targetPort"] = port["port"]
        return spec

    def allocate(self, spec: dict[str, Any], old_spec: dict[str, Any] | None, owner: str) -> None:
        """Give the Service the addresses its cluster allocates (none here: the federation's
        Services get theirs in each member)."""

    def prepare_for_create(self, obj: Obj) -> None:
        spec = self._default(obj)
        if spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        else:
            self.allocate(spec, None, str(meta(obj).get("name", "")))
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        spec = self._default(new)
        old_spec = old.get("spec") or {}
        if spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            return
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
        self.allocate(spec, old_spec, str(meta(old).get("name", "")))

    def validate(self, obj: Obj) -> list[Cause]:
        return self._validate_spec(obj) + condition_causes((obj.get("status") or {}).get("conditions"))

    def _validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        kind = spec.get("type")
        if kind not in SERVICE_TYPES:
            causes.append(_unsupported("spec.type", kind, SERVICE_TYPES))
            return causes
        if kind == "ExternalName":
            if not spec.get("externalName"):
                causes.append(Cause("spec.externalName", "Required value", "FieldValueRequired"))
            return causes
        ports = service_ports(spec)
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
                causes.append(_unsupported(f"{where}.protocol", port.get("protocol"), PROTOCOLS))
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
    for port in service_ports(obj.get("spec") or {}):
        text = str(port.get("port"))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        cells.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(cells) or "<none>"


def service_selector_cell(obj: Obj) -> str:
    selector = dig(obj, "spec", "selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


SERVICES = ResourceType(
    "",
    "v1",
    "Service",
    "services",
    "service",
    True,
    "io.k8s.api.core.v1.Service",
    ServiceStrategy(),
    short_names=("svc",),
    subresources=frozenset({"status"}),
    categories=("all",),
)
