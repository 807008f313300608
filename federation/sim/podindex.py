"""The pods of one simulated cluster, grouped as its controllers read them: by owner, node and state.

The ReplicaSet controller needs one ReplicaSet's pods; the scheduler and kubelets need the pods
waiting for a node, the bound pods not started yet, and how many pods hold a slot on each node.
Listing every pod of the namespace or of the cluster for that on every pass deep-copied each of
them, and both grow with the square of the pod count: 70 % of the simulator's CPU with 10 clusters
of ~200 pods (py-spy; 47 % the ReplicaSet controller, 24 % the scheduler), enough to answer
``/readyz`` after more than a second and have healthy clusters declared Offline.

:class:`PodIndex` files every pod in two indexes of the cluster's
:class:`~federation.apimachinery.memory.MemoryStorage` (:meth:`~MemoryStorage.add_index`). The
storage keeps them in the same step as each write, so a read is exact (never behind the storage, as
a watch-fed cache would be: the ReplicaSet controller would count a pod it just created as missing)
and costs what it returns.

* :data:`OWNER_INDEX`: ``(namespace, ReplicaSet name)`` of a pod's controlling ReplicaSet, whatever
  the owner's uid (a pod of an earlier namesake is found, and deleted, by its successor);
* :data:`SCHEDULING_INDEX`: :data:`WAITING` (no node, not terminal, not being deleted), and for a
  bound pod ``("bound", node)``, plus, unless it is terminal, ``("occupying", node)`` (it takes a
  slot) and ``("ip", node, podIP)`` once it has an IP, plus :data:`STARTING` if it is Pending and not
  being deleted.

The ``*_readonly`` readers hand out the stored pods themselves, not copies: callers never change
them (the scheduler copies a pod before each write, as it did) and read again after an ``await``.
"""

from __future__ import annotations

from collections.abc import Hashable

from federation.apimachinery import MemoryStorage, Obj, dig, meta, namespace_of
from federation.sim.nodes import NODES
from federation.sim.pods import PODS, TERMINAL_PHASES, owned_by_replicaset, pod_active

OWNER_INDEX = "sim.replicaset"
SCHEDULING_INDEX = "sim.scheduling"
WAITING: tuple[str] = ("waiting",)
STARTING: tuple[str] = ("starting",)


def owner_values(pod: Obj) -> list[tuple[str, str]]:
    """Where :data:`OWNER_INDEX` files ``pod``."""
    owner = owned_by_replicaset(pod)
    return [] if owner is None else [(namespace_of(pod), owner[0])]


def scheduling_values(pod: Obj) -> list[Hashable]:
    """Where :data:`SCHEDULING_INDEX` files ``pod``."""
    node = dig(pod, "spec", "nodeName")
    if not node:
        return [WAITING] if pod_active(pod) else []
    values: list[Hashable] = [("bound", str(node))]
    phase = dig(pod, "status", "phase")
    if phase not in TERMINAL_PHASES:
        values.append(("occupying", str(node)))
        ip = dig(pod, "status", "podIP")
        if ip:
            values.append(("ip", str(node), str(ip)))
        if phase == "Pending" and not meta(pod).get("deletionTimestamp"):
            values.append(STARTING)
    return values


class PodIndex:
    """The pods of one cluster's storage, by owner and by scheduling state (see the module docstring)."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage
        storage.add_index(PODS, OWNER_INDEX, owner_values)
        storage.add_index(PODS, SCHEDULING_INDEX, scheduling_values)

    def of_replicaset_readonly(self, namespace: str, name: str) -> list[Obj]:
        """The pods controlled by a ReplicaSet called ``name`` in ``namespace``, whatever its uid
        (stored, not copies)."""
        return self.storage.indexed_readonly(PODS, OWNER_INDEX, (namespace, name))

    def waiting_readonly(self) -> list[Obj]:
        """Pods without a node that are neither terminal nor being deleted (stored, not copies)."""
        return self.storage.indexed_readonly(PODS, SCHEDULING_INDEX, WAITING)

    def starting_readonly(self) -> list[Obj]:
        """Bound Pending pods not being deleted: the kubelets' to start (stored, not copies)."""
        return self.storage.indexed_readonly(PODS, SCHEDULING_INDEX, STARTING)

    def bound_nodes(self) -> list[str]:
        """Names of the nodes at least one pod is bound to (whether the node exists or not)."""
        return [
            str(value[1])
            for value in self.storage.index_values(PODS, SCHEDULING_INDEX)
            if isinstance(value, tuple) and len(value) == 2 and value[0] == "bound"
        ]

    def bound_to_readonly(self, node: str) -> list[Obj]:
        """Every pod bound to ``node``, terminal ones included (stored, not copies)."""
        return self.storage.indexed_readonly(PODS, SCHEDULING_INDEX, ("bound", node))

    def occupying_readonly(self, node: str) -> list[Obj]:
        """The pods that take a slot on ``node``: bound and not terminal (stored, not copies)."""
        return self.storage.indexed_readonly(PODS, SCHEDULING_INDEX, ("occupying", node))

    def slots_taken(self, node: str) -> int:
        """How many pods take a slot on ``node`` now."""
        return self.storage.indexed_count(PODS, SCHEDULING_INDEX, ("occupying", node))

    def ip_in_use(self, node: str, ip: str) -> bool:
        """Whether a pod that takes a slot on ``node`` holds the pod IP ``ip``."""
        return self.storage.indexed_count(PODS, SCHEDULING_INDEX, ("ip", node, ip)) > 0

    def nodes_readonly(self) -> list[Obj]:
        """Every node of the cluster, by name (stored, not copies)."""
        return self.storage.list_readonly(NODES, None)
