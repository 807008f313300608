"""The traffic controller: the global load balancer follows the regions (DESIGN.md "Traffic").

For every federated Service of type LoadBalancer, ``reconcile(("services", namespace, name))``:

* reads, per cluster in the Service's plan, the regional address its member gave the copy
  (``status.loadBalancer.ingress[0]``: ``ip`` and ``ports[0].port``), the ready pods behind it there
  (the member's pods the copy selects, from the member's watch), and whether the cluster is Ready,
  cordoned or stale and the address answers (:meth:`TrafficController.check_addresses`);
* computes the traffic weights with the pure :func:`federation.scheduling.traffic_weights`;
* programs the provider (Caddy by default) with one route per Service: its own listen port on the
  provider's address, one upstream per region weighted so. The provider gets the whole state on
  every change, and changes only what changed, live;
* writes the global address into the federated Service's ``status.loadBalancer.ingress`` (``ip``
  plus ``ports[].port``, as a cloud load balancer's address appears), so ``kubectl get svc`` shows
  it as EXTERNAL-IP;
* exports ``federation_traffic_weight{namespace,service,cluster}``; the Placement shows each region's
  address and weight (the status controller reads :attr:`TrafficController.weights`).

A cluster that goes Offline is taken out at once: the Clusters' watch queues every Service here, not
on the next resync. Listen ports come from ``FEDERATION_TRAFFIC_PORTS``; a Service keeps the port
its status already names (so a restarted controller, or a restarted Caddy, serves the same address).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from federation import metrics
from federation.apimachinery import SERVICES, Informer, Obj, Registry, Result, meta
from federation.controllers.fleet import PODS, Fleet, Seat
from federation.controllers.placing import FedKey, Placer
from federation.controllers.writing import update_status
from federation.scheduling import Region, Weights, traffic_weights
from federation.settings import ControllerSettings, TrafficSettings
from federation.traffic import Provider, Route, Upstream

log = logging.getLogger(__name__)

CHECK_TIMEOUT: Final = 0.5


@dataclass
class AddressHealth:
    answering: bool = True
    failures: int = 0
    successes: int = 0


def regional_address(copy: Obj | None) -> tuple[str, int] | None:
    """The member's address for its copy of a LoadBalancer Service (ip, port), if it has one."""
    for ingress in ((copy or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
        host = ingress.get("ip") or ingress.get("hostname")
        ports = ingress.get("ports") or []
        port = ports[0].get("port") if ports else None
        if host and isinstance(port, int):
            return str(host), port
    return None


def _pod_ready(pod: Obj) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def ready_pods(seat: Seat, namespace: str, selector: Mapping[str, str]) -> int:
    """Ready pods in the member that the Service's selector picks (among the federation's pods)."""
    informer = seat.informer(PODS)
    if informer is None or not selector:
        return 0
    count = 0
    for pod in informer.list(namespace):
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()) and _pod_ready(pod):
            count += 1
    return count


def is_load_balancer(service: Obj | None) -> bool:
    return bool(service) and ((service or {}).get("spec") or {}).get("type") == "LoadBalancer"


class TrafficController:
    """Weights, routes and global addresses (see the module docstring)."""

    def __init__(
        self,
        *,
        registry: Registry,
        fleet: Fleet,
        placer: Placer,
        services: Informer,
        provider: Provider,
        traffic: TrafficSettings,
        settings: ControllerSettings,
        on_weights: Callable[[FedKey], None],
    ) -> None:
        self.registry = registry
        self.fleet = fleet
        self.placer = placer
        self.services = services
        self.provider = provider
        self.traffic = traffic
        self.settings = settings
        self.on_weights = on_weights
        self.routes: dict[FedKey, Route] = {}
        self.weights: dict[FedKey, Weights] = {}
        self.addresses: dict[FedKey, dict[str, str]] = {}
        """Per Service, each region's ``host:port``."""
        self._health: dict[str, AddressHealth] = {}
        """Per regional ``host:port``: whether it answers."""
        self._applied: tuple[Route, ...] | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: FedKey) -> Result:
        _, namespace, name = key
        service = self.services.get(namespace, name)
        plan = self.placer.plans.get(key)
        if not is_load_balancer(service) or meta(service or {}).get("deletionTimestamp") or plan is None:
            if key in self.routes or key in self.weights:
                self.routes.pop(key, None)
                self._forget(key)
                await self._apply()
            return Result()
        assert service is not None
        selector = (service.get("spec") or {}).get("selector") or {}
        regions: list[Region] = []
        addresses: dict[str, tuple[str, int]] = {}
        holders = {s.name for s in self.fleet.seats.values() if s.peek(SERVICES, namespace, name) is not None}
        for cluster in sorted(set(plan) | holders):  # an Offline holder shows, with weight 0
            seat = self.fleet.get(cluster)
            if seat is None:
                continue
            address = regional_address(seat.peek(SERVICES, namespace, name))
            dial = f"{address[0]}:{address[1]}" if address else None
            if address is not None:
                addresses[cluster] = address
            regions.append(
                Region(
                    cluster=cluster,
                    ready_pods=ready_pods(seat, namespace, selector),
                    cluster_ready=seat.ready,
                    cordoned=seat.cordoned,
                    stale=seat.member is None or not seat.synced(PODS),
                    address=dial,
                    answering=self._health.get(dial or "", AddressHealth()).answering,
                )
            )
        weights = traffic_weights(regions)
        previous = self.weights.get(key)
        self.weights[key] = weights
        self.addresses[key] = {c: f"{h}:{p}" for c, (h, p) in addresses.items()}
        for cluster, weight in weights.weights.items():
            metrics.TRAFFIC_WEIGHT.labels(namespace, name, cluster).set(weight)
        port = self._listen_port(key, service)
        route = Route(
            name=f"{namespace}/{name}",
            listen_port=port,
            upstreams=tuple(
                Upstream(cluster, host, p, weights.weights.get(cluster, 0))
                for cluster, (host, p) in sorted(addresses.items())
            ),
        )
        if self.routes.get(key) != route:
            self.routes[key] = route
            await self._apply()
        await self._write_address(key, service, port)
        if previous is None or dict(previous.weights) != dict(weights.weights):
            log.info("traffic %s/%s: %s", namespace, name, _describe(weights))
            self.on_weights(key)
        return Result()

    def _forget(self, key: FedKey) -> None:
        weights = self.weights.pop(key, None)
        self.addresses.pop(key, None)
        if weights is not None:
            for cluster in weights.weights:
                metrics.remove_series(metrics.TRAFFIC_WEIGHT, key[1], key[2], cluster)
        self.on_weights(key)

    def _listen_port(self, key: FedKey, service: Obj) -> int:
        """The Service's port on the global address: the one its status names if still free, else
        the lowest free one of the range."""
        allowed = self.traffic.traffic_port_range()
        taken = {r.listen_port for k, r in self.routes.items() if k != key}
        known = self.routes.get(key)
        if known is not None and known.listen_port not in taken:
            return known.listen_port
        for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            for p in ingress.get("ports") or []:
                port = p.get("port")
                if isinstance(port, int) and port in allowed and port not in taken:
                    return port
        for port in allowed:
            if port not in taken and _free(self.traffic.traffic_address, port):
                return port
        raise RuntimeError(f"FEDERATION_TRAFFIC_PORTS {self.traffic.traffic_ports} has no free port left")

    async def _apply(self) -> None:
        async with self._lock:
            routes = tuple(sorted(self.routes.values(), key=lambda r: r.name))
            if routes == self._applied:
                return
            await self.provider.apply(routes)
            self._applied = routes

    async def _write_address(self, key: FedKey, service: Obj, port: int) -> None:
        _, namespace, name = key
        wanted: list[dict[str, Any]] = (
            [{"ip": self.provider.address, "ports": [{"port": port, "protocol": "TCP"}]}]
            if self.provider.address
            else []
        )
        current = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if current == wanted:
            return

        def mutate(svc: Obj) -> bool:
            if meta(svc).get("uid") != meta(service).get("uid"):
                return False
            status = svc.setdefault("status", {})
            if (status.get("loadBalancer") or {}).get("ingress") == wanted:
                return False
            status["loadBalancer"] = {"ingress": wanted} if wanted else {}
            return True

        await update_status(self.registry, SERVICES, namespace, name, mutate)

    # ------------------------------------------------------------------ regional addresses

    async def check_addresses(self) -> list[FedKey]:
        """Check every regional address once; the Services whose addresses changed verdict."""
        dials = {f"{u.host}:{u.port}": (u.host, u.port) for r in self.routes.values() for u in r.upstreams}
        for gone in set(self._health) - set(dials):
            del self._health[gone]
        results = await asyncio.gather(*(_answers(h, p) for h, p in dials.values()))
        flipped: set[str] = set()
        for dial, ok in zip(dials, results, strict=True):
            health = self._health.setdefault(dial, AddressHealth())
            if ok:
                health.successes, health.failures = health.successes + 1, 0
                if not health.answering and health.successes >= self.settings.success_threshold:
                    health.answering = True
                    flipped.add(dial)
            else:
                health.failures, health.successes = health.failures + 1, 0
                if health.answering and health.failures >= self.settings.failure_threshold:
                    health.answering = False
                    flipped.add(dial)
        return [
            key
            for key, route in self.routes.items()
            if any(f"{u.host}:{u.port}" in flipped for u in route.upstreams)
        ]

    async def close(self) -> None:
        await self.provider.stop()


async def _answers(host: str, port: int) -> bool:
    """Whether an HTTP server answers at host:port (any status: a 503 for no ready pod is an answer)."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CHECK_TIMEOUT)
        writer.write(
            f"GET /healthz HTTP/1.0\r\nHost: {host}\r\nUser-Agent: federation-traffic\r\n\r\n".encode()
        )
        line = await asyncio.wait_for(reader.readline(), CHECK_TIMEOUT)
        return line.startswith(b"HTTP/")
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _free(address: str, port: int) -> bool:
    """Whether nothing on this host listens on ``address:port`` yet (another program may hold a port
    of the range: the load balancer could not listen there)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _describe(weights: Weights) -> str:
    return (
        ", ".join(
            f"{c}={w}" + (f" ({weights.reasons[c]})" if c in weights.reasons else "")
            for c, w in sorted(weights.weights.items())
        )
        or "no region"
    )
