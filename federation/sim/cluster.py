"""One simulated member cluster: a Kubernetes API server on a loopback port, and what runs behind it.

A :class:`SimulatedCluster` is the shared API machinery (``build_app``) over a
:class:`~federation.apimachinery.memory.MemoryStorage`, served over HTTPS on ``127.0.0.1`` with the
simulator's CA, accepting one bearer token (401 without it), plus the in-cluster controllers: node pool,
ReplicaSets, scheduler and kubelets (:mod:`federation.sim.workload`) and the service load-balancer
controller with its regional addresses (:mod:`federation.sim.loadbalancers`), each on its own work
queue fed by watches on the storage. The controllers write through a
:class:`~federation.apimachinery.Registry` of their own over the same storage, so their creates and
deletes get the same object semantics (system metadata, defaults, finalizers) as a client's.

Like a fresh GKE cluster it starts with the namespaces ``default``, ``kube-system``, ``kube-public`` and
``kube-node-lease``, the ``kubernetes`` Service in ``default``, and its nodes.

Guarantees: a fault (:mod:`federation.sim.faults`) changes only what clients see, never the stored
objects; ``down`` suspends the API port and every regional address together and ``heal`` resumes them on
the same ports; :meth:`SimulatedCluster.stop` ends every task, connection and port it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from uvicorn.lifespan.on import LifespanOn

from federation.apimachinery import (
    NAMESPACES,
    AlreadyExists,
    EventRecorder,
    KubeContext,
    MemoryStorage,
    Principal,
    Registry,
    ResourceType,
    SchemaSet,
    WatchEvent,
    WorkQueue,
    WriteOptions,
    build_app,
    feed,
    static_token_authenticator,
)
from federation.sim.faults import Fault, FaultInjector, FaultState, status_error
from federation.sim.kinds import cluster_scheme
from federation.sim.listening import Listener, server_config
from federation.sim.loadbalancers import LoadBalancers, ServiceKey
from federation.sim.network import ClusterNetwork, Topology
from federation.sim.nodepool import KUBELET_VERSION
from federation.sim.workload import Workload, WorkloadSettings

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": f"{KUBELET_VERSION}-sim",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T00:00:00Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}
"""What ``/version`` answers: a Kubernetes 1.32 server, marked ``-sim``."""


@dataclass(frozen=True)
class ClusterSpec:
    """What one simulated cluster looks like."""

    name: str
    region: str | None = None
    """``topology.kubernetes.io/region`` of its nodes (default: the cluster name)."""
    nodes: int = 3
    pods_per_node: int = 10
    start_delay: float = 1.0
    watch_window: int = 10_000
    """How many recent changes watches can resume from; older versions get 410 Gone."""

    @property
    def region_name(self) -> str:
        return self.region or self.name


@dataclass
class _Tasks:
    items: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.items.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        for task in self.items:
            task.cancel()
        results = await asyncio.gather(*self.items, return_exceptions=True)
        for task, result in zip(self.items, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("task %s ended with %r", task.get_name(), result)
        self.items.clear()


class SimulatedCluster:
    def __init__(
        self,
        spec: ClusterSpec,
        *,
        index: int,
        schemas: SchemaSet,
        tls: ssl.SSLContext,
        ca_pem: bytes,
        token: str | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.ca_pem = ca_pem
        self.token = token or secrets.token_urlsafe(32)
        self.topology = Topology(spec.name, spec.region_name, index)
        self.storage = MemoryStorage(window=spec.watch_window)
        self.network = ClusterNetwork(self.topology.service_cidr())
        self.scheme = cluster_scheme(self.network)
        services = self.scheme.lookup("", "v1", "services")
        assert services is not None
        self.services: ResourceType = services
        self.faults = FaultState()
        self.recorder = EventRecorder(self.storage, host=f"{spec.name}-control-plane")
        self.registry = Registry(self.scheme, self.storage, schemas)
        self.workload = Workload(
            self.registry,
            topology=self.topology,
            settings=WorkloadSettings(pods_per_node=spec.pods_per_node, start_delay=spec.start_delay),
            node_count=spec.nodes,
            recorder=self.recorder,
        )
        self.load_balancers = LoadBalancers(
            self.storage,
            cluster=spec.name,
            region=spec.region_name,
            services=services,
            network=self.network,
            recorder=self.recorder,
            faults=self.faults,
        )
        self.app = build_app(
            scheme=self.scheme,
            storage=self.storage,
            schemas=schemas,
            authenticator=static_token_authenticator(self.token, Principal("cluster-admin", "admin")),
            version=VERSION_INFO,
            title=f"Simulated cluster {spec.name}",
        )
        config = server_config(FaultInjector(self.app, self.faults, render=status_error), lifespan="on")
        self._config = config
        self._lifespan = LifespanOn(config)
        self.listener = Listener(config, tls=tls, app_state=self._lifespan.state)
        self._service_queue: WorkQueue[ServiceKey] = WorkQueue(
            self.load_balancers.reconcile, name=f"{spec.name}/loadbalancers"
        )
        self._tasks = _Tasks()
        self.started = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def server(self) -> str:
        return self.listener.url

    @property
    def port(self) -> int:
        return self.listener.port

    def kube_context(self) -> KubeContext:
        return KubeContext(name=self.name, server=self.server, ca_pem=self.ca_pem, token=self.token)

    async def start(self, *, port: int = 0) -> None:
        await self._lifespan.startup()
        if self._lifespan.should_exit:
            raise RuntimeError(f"cluster {self.name}: the API application failed to start")
        await self._bootstrap()
        self._start_controllers()
        await self.listener.start(port=port)
        self.started = True

    async def stop(self) -> None:
        """End everything this cluster started; its objects are dropped with it."""
        self._service_queue.close()
        await self._tasks.stop()
        for task_name, error in await self.workload.stop():
            log.error("task %s ended with %r", task_name, error)
        await self.registry.close()
        self.faults.close()
        await self.listener.close()
        await self.load_balancers.close()
        if self.started:
            await self._lifespan.shutdown()
        self.storage.cache.close()
        self.started = False

    async def _bootstrap(self) -> None:
        """What a fresh cluster holds, created through the registry as its API server's own
        bootstrap does (uid, creation time, defaults, the ClusterIP allocated by the strategy)."""
        for name in SYSTEM_NAMESPACES:
            with contextlib.suppress(AlreadyExists):
                await self.registry.create(NAMESPACES, "", {"metadata": {"name": name}}, WriteOptions())
        # The first address of the service range is the kubernetes Service's, as in Kubernetes.
        ip = str(self.network.service_cidr.network_address + 1)
        svc = {
            "metadata": {
                "name": "kubernetes",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": ip,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
            },
        }
        with contextlib.suppress(AlreadyExists):
            await self.registry.create(self.services, "default", svc, WriteOptions())

    def _start_controllers(self) -> None:
        sq, lb = self._service_queue, self.load_balancers
        self.workload.start()
        self._tasks.start(sq.run(), f"{self.name}/loadbalancers")
        self._tasks.start(
            feed(self.storage, self.services, sq, _service_keys, lb.all_keys), f"{self.name}/watch-services"
        )

    # ------------------------------------------------------------------ run-time changes

    async def fail(self, fault: Fault) -> None:
        """Start ``fault`` (replacing any other)."""
        self.faults.set(fault)
        if fault.mode == "down":
            await self.listener.suspend()
            await self.load_balancers.suspend()
        else:
            await self.listener.resume()
            await self.load_balancers.resume()

    async def heal(self) -> None:
        self.faults.set(None)
        await self.listener.resume()
        await self.load_balancers.resume()

    async def set_nodes(self, count: int) -> None:
        self.workload.set_node_count(count)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "region": self.spec.region_name,
            "server": self.server,
            "nodes": self.workload.node_count,
            "podsPerNode": self.spec.pods_per_node,
            "startDelay": self.spec.start_delay,
            "fault": self.faults.fault.describe() if self.faults.fault else None,
            "addresses": {f"{ns}/{name}": url for (ns, name), url in self.load_balancers.addresses().items()},
        }


def _service_keys(event: WatchEvent) -> list[ServiceKey]:
    return LoadBalancers.keys_for_service(event)
