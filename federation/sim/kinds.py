"""The kinds only a simulated member cluster serves: Node, Pod and Service (core/v1).

Together with the shared kinds of :mod:`federation.apimachinery.kinds` (Namespace, Secret, Event,
ReplicaSet) they make the API of one simulated cluster (:func:`cluster_scheme`). Each kind validates
against its official schema (``io.k8s.api.core.v1.*``) in the shared server; the strategies here add what
Kubernetes does beyond the schema:

* Service: a ClusterIP from the cluster's own service range and node ports from 30000-32767, both kept
  across updates and immutable once set; ``status`` (``loadBalancer.ingress``) is written only through
  ``/status`` (the simulator's service controller does it, see :mod:`federation.sim.addresses`);
* Pod: the defaults a kubelet and the API server fill in (restart policy, DNS policy, pull policy, ...),
  and a node name that cannot move once bound;
* Node: cluster-scoped, status written only through ``/status``.

Tables print the columns kubectl users know: pods ``NAME READY STATUS RESTARTS AGE``, services
``NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE``, nodes ``NAME STATUS ROLES VERSION AGE`` (the shared
table printer puts AGE last).

Allocations happen in ``prepare_for_create``, before validation and storage; a create that then fails
leaves its address taken until :meth:`ClusterNetwork.repair` (run by the service controller whenever a
Service goes away) gives back what no stored Service holds, as Kubernetes' repair loop does.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from federation.apimachinery.errors import Cause, invalid
from federation.apimachinery.kinds import CORE_KINDS, default_pod_template_spec
from federation.apimachinery.objects import dig, meta
from federation.apimachinery.resources import Column, Obj, ResourceType, Scheme, Strategy
from federation.apimachinery.tables import AGE

NODE_PORT_RANGE = (30000, 32767)
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
PROTOCOLS = ("TCP", "UDP", "SCTP")
REPAIR_GRACE_SECONDS = 30.0
"""An allocation younger than this is kept by :meth:`ClusterNetwork.repair` even when no stored
Service holds it yet (its create may still be on its way to the store)."""


class ClusterNetwork:
    """The address ranges of one simulated cluster and what is allocated from them.

    Allocation walks the range from a cursor, so a released address is reused only after the whole
    range has been handed out (a freed ClusterIP does not reappear at once on another Service).
    """

    def __init__(
        self,
        service_cidr: str,
        *,
        node_ports: tuple[int, int] = NODE_PORT_RANGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service_cidr = ipaddress.IPv4Network(service_cidr)
        self.node_ports = node_ports
        self._clock = clock
        self._ips: dict[str, float] = {}
        self._ports: dict[int, float] = {}
        self._ip_cursor = 0
        self._port_cursor = 0
        hosts = self.service_cidr.num_addresses - 2
        if hosts < 2:
            raise ValueError(f"service range {service_cidr} is too small")
        self._ip_count = hosts

    # The first host address is reserved for the ``kubernetes`` Service, as Kubernetes does.
    def _ip_at(self, index: int) -> str:
        return str(self.service_cidr.network_address + 2 + index)

    def allocate_ip(self, requested: str | None = None, *, owner: str = "") -> str:
        if requested:
            try:
                addr = ipaddress.IPv4Address(requested)
            except ValueError:
                raise invalid(
                    "Service",
                    owner,
                    [
                        Cause(
                            "spec.clusterIPs[0]", f'Invalid value: "{requested}": must be a valid IP address'
                        )
                    ],
                ) from None
            if addr not in self.service_cidr or addr in (
                self.service_cidr.network_address,
                self.service_cidr.broadcast_address,
            ):
                raise invalid(
                    "Service",
                    owner,
                    [
                        Cause(
                            "spec.clusterIPs[0]",
                            f'Invalid value: "{requested}": provided IP is not in the valid range. '
                            f"The range of valid IPs is {self.service_cidr}",
                        )
                    ],
                )
            if requested in self._ips:
                raise invalid(
                    "Service",
                    owner,
                    [
                        Cause(
                            "spec.clusterIPs[0]",
                            f'Invalid value: "{requested}": provided IP is already allocated',
                        )
                    ],
                )
            self._ips[requested] = self._clock()
            return requested
        for step in range(self._ip_count):
            candidate = self._ip_at((self._ip_cursor + step) % self._ip_count)
            if candidate not in self._ips:
                self._ip_cursor = (self._ip_cursor + step + 1) % self._ip_count
                self._ips[candidate] = self._clock()
                return candidate
        raise invalid(
            "Service", owner, [Cause("spec.clusterIPs", "Internal error: range is full", "FieldValueInvalid")]
        )

    def allocate_node_port(self, requested: int | None = None, *, owner: str = "") -> int:
        low, high = self.node_ports
        if requested:
            if not low <= requested <= high:
                raise invalid(
                    "Service",
                    owner,
                    [
                        Cause(
                            "spec.ports[].nodePort",
                            f"Invalid value: {requested}: provided port is not in the valid range. "
                            f"The range of valid ports is {low}-{high}",
                        )
                    ],
                )
            self._ports[requested] = self._clock()
            return requested
        size = high - low + 1
        for step in range(size):
            candidate = low + (self._port_cursor + step) % size
            if candidate not in self._ports:
                self._port_cursor = (self._port_cursor + step + 1) % size
                self._ports[candidate] = self._clock()
                return candidate
        raise invalid("Service", owner, [Cause("spec.ports[].nodePort", "Internal error: range is full")])

    def ip_in_use(self, ip: str) -> bool:
        return ip in self._ips

    def repair(self, services: Iterable[Obj]) -> None:
        """Keep exactly the allocations stored Services hold, plus the ones younger than the grace."""
        now = self._clock()
        held_ips: set[str] = set()
        held_ports: set[int] = set()
        for svc in services:
            spec = svc.get("spec") or {}
            for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                if ip and ip != "None":
                    held_ips.add(str(ip))
            for port in spec.get("ports") or []:
                if isinstance(port, dict) and isinstance(port.get("nodePort"), int):
                    held_ports.add(port["nodePort"])
        self._ips = {ip: t for ip, t in self._ips.items() if ip in held_ips or now - t < REPAIR_GRACE_SECONDS}
        for ip in held_ips:
            self._ips.setdefault(ip, now)
        self._ports = {
            p: t for p, t in self._ports.items() if p in held_ports or now - t < REPAIR_GRACE_SECONDS
        }
        for p in held_ports:
            self._ports.setdefault(p, now)


# --------------------------------------------------------------------------------------------------- Service


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


# --------------------------------------------------------------------------------------------------- Pod


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
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

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


# --------------------------------------------------------------------------------------------------- Node


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


def cluster_scheme(network: ClusterNetwork) -> Scheme:
    """Everything one simulated cluster serves: the shared kinds plus Node, Pod and its Service kind."""
    return Scheme((*CORE_KINDS, NODES, PODS, services_type(network)))
