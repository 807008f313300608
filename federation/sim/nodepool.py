"""The node pool of a simulated cluster: its Node objects, as a managed instance group keeps VMs.

A simulated cluster has no machines, but its API tells the truth about capacity, as a GKE cluster's
would: the pool keeps Node objects ``<cluster>-node-<i>`` for ``i < node_count``, each offering
``pods_per_node`` pod slots, labelled with ``topology.kubernetes.io/region`` and ``.../zone`` and
addressed by the cluster's :class:`~federation.sim.network.Topology`. The count can change at run
time (a region losing or gaining capacity); a managed node deleted by hand comes back, as a managed
instance group brings its VM back.

One key (:data:`NODEPOOL`) stands for the whole pool. A node is registered as a kubelet registers
itself: created through the registry (which sets its uid, creation time and checks it), then its
status (capacity, conditions, addresses) written as through ``/status``.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from typing import Final

from federation.apimachinery import (
    AlreadyExists,
    NotFound,
    Obj,
    Registry,
    Result,
    WatchEvent,
    WriteOptions,
    labels_of,
    name_of,
    new_uid,
    now_rfc3339,
    rv_of,
)
from federation.sim.network import Topology
from federation.sim.nodes import NODES

KUBELET_VERSION = "v1.32.4"
POOL_LABEL = "sim.federation.io/node-pool"
POOL_NAME = "default-pool"
MAX_NODES = 250
MAX_PODS_PER_NODE = 250
NODEPOOL: Final = "nodepool"
"""The one key of the node pool's queue."""


def hex_id(*parts: str) -> str:
    """A stable hexadecimal identity (machine ids, container ids) derived from names."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


class NodePool:
    """The node pool controller of one cluster (see the module docstring)."""

    def __init__(
        self, registry: Registry, *, topology: Topology, pods_per_node: int, node_count: int
    ) -> None:
        if not 1 <= pods_per_node <= MAX_PODS_PER_NODE:
            raise ValueError(f"pods per node must be between 1 and {MAX_PODS_PER_NODE}")
        self.registry = registry
        self.storage = registry.storage
        self.topology = topology
        self.pods_per_node = pods_per_node
        self._node_count = 0
        self.set_node_count(node_count)

    @property
    def node_count(self) -> int:
        return self._node_count

    def set_node_count(self, count: int) -> None:
        """Resize the pool (takes effect at the next reconcile of :data:`NODEPOOL`)."""
        if not 0 <= count <= MAX_NODES:
            raise ValueError(f"node count must be between 0 and {MAX_NODES}")
        self._node_count = count

    @staticmethod
    def keys_for_node(event: WatchEvent) -> list[str]:
        return [NODEPOOL]

    @staticmethod
    async def resync() -> list[str]:
        return [NODEPOOL]

    async def reconcile(self, key: str) -> Result:
        page = await self.storage.list(NODES, None, label_equals={POOL_LABEL: POOL_NAME})
        existing = {name_of(n) for n in page.items if labels_of(n).get(POOL_LABEL) == POOL_NAME}
        wanted = {self.topology.node_name(i): i for i in range(self._node_count)}
        for name in sorted(existing - wanted.keys()):
            with contextlib.suppress(NotFound):
                await self.registry.delete(NODES, "", name)
        for name, i in sorted(wanted.items(), key=lambda kv: kv[1]):
            if name in existing:
                continue
            with contextlib.suppress(AlreadyExists):
                await self._register(self._node(i))
        return Result()

    async def _register(self, node: Obj) -> None:
        status = node.pop("status")
        created = (await self.registry.create(NODES, "", node, WriteOptions())).object
        created["status"] = status
        # Status only, conditional on the version just created: what /status would store, without
        # decoding the whole object again (the registry's /status path: about 1.7 times the cost).
        with contextlib.suppress(NotFound):
            await self.storage.update(NODES, created, precondition_rv=rv_of(created))

    def _node(self, i: int) -> Obj:
        """Node ``i`` of the pool as its kubelet registers it (status included)."""
        t = self.topology
        name = t.node_name(i)
        zone = t.zone(i)
        pods = str(self.pods_per_node)
        now = now_rfc3339()
        resources = {"cpu": "4", "memory": "16393220Ki", "ephemeral-storage": "98831908Ki", "pods": pods}
        conditions = [
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        ident = hex_id(t.cluster, name)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "e2-standard-4",
                    "topology.kubernetes.io/region": t.region,
                    "topology.kubernetes.io/zone": zone,
                    POOL_LABEL: POOL_NAME,
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {
                "podCIDR": t.pod_cidr(i),
                "podCIDRs": [t.pod_cidr(i)],
                "providerID": f"sim://{t.cluster}/{zone}/{name}",
            },
            "status": {
                "capacity": dict(resources),
                "allocatable": dict(resources),
                "conditions": [
                    {
                        "type": kind,
                        "status": status,
                        "reason": reason,
                        "message": message,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                    for kind, status, reason, message in conditions
                ],
                "addresses": [
                    {"type": "InternalIP", "address": t.node_ip(i)},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "machineID": ident[:32],
                    "systemUUID": str(uuid.UUID(ident[32:64])),
                    "bootID": new_uid(),
                    "kernelVersion": "6.1.100+",
                    "osImage": "Container-Optimized OS from Google",
                    "containerRuntimeVersion": "containerd://1.7.24",
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": KUBELET_VERSION,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        }
