"""The address plan of one simulated cluster, and the allocator of its Service addresses.

:class:`Topology` names a cluster's nodes and gives them addresses that look like a GKE cluster's:
cluster ``k`` gives node ``i`` the pod range ``10.<k mod 128>.<i>.0/24`` and the InternalIP
``10.<240 + (k div 256) mod 16>.<k mod 256>.<i+2>``; Services come from
``10.<128 + k mod 112>.0.0/16``. Nothing is routable: the addresses only make the objects look right.

:class:`ClusterNetwork` hands out ClusterIPs and node ports (30000-32767) from those ranges, as
Kubernetes' allocators do. Allocations happen in the Service strategy's ``prepare_for_create``,
before validation and storage; a create that then fails leaves its address taken until
:meth:`ClusterNetwork.repair` (run by the load-balancer controller whenever a Service goes away)
gives back what no stored Service holds, as Kubernetes' repair loop does.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from federation.apimachinery import Cause, Obj, invalid

NODE_PORT_RANGE = (30000, 32767)
REPAIR_GRACE_SECONDS = 30.0
"""An allocation younger than this is kept by :meth:`ClusterNetwork.repair` even when no stored
Service holds it yet (its create may still be on its way to the store)."""


@dataclass(frozen=True)
class Topology:
    """Names and addresses of one simulated cluster's nodes."""

    cluster: str
    region: str
    index: int = 0

    def node_name(self, i: int) -> str:
        return f"{self.cluster}-node-{i}"

    def zone(self, i: int) -> str:
        return f"{self.region}-{'abc'[i % 3]}"

    def node_ip(self, i: int) -> str:
        return f"10.{240 + (self.index // 256) % 16}.{self.index % 256}.{i + 2}"

    def pod_cidr(self, i: int) -> str:
        return f"10.{self.index % 128}.{i}.0/24"

    def service_cidr(self) -> str:
        return f"10.{128 + self.index % 112}.0.0/16"


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
