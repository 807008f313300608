"""What a member cluster can run, read from its Nodes: the scheduler's capacity estimate.

Replica division (DESIGN.md "Replica division") bounds each cluster by a capacity estimate. The
estimate here counts what a new pod could use: pod slots (``status.allocatable.pods``) of the nodes
that are Ready and schedulable, as the kube-scheduler would. Nodes that are not Ready or are cordoned
(``spec.unschedulable``) count in ``nodes`` but add no slots. A pod count that is not a plain
quantity counts as zero rather than failing the whole estimate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from federation.apimachinery import Obj
from federation.apis import REGION_LABEL

_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


@dataclass(frozen=True)
class Capacity:
    """Pod capacity of one member, summed over its nodes."""

    allocatable_pods: int
    """Sum over schedulable Ready nodes of ``status.allocatable.pods``."""
    schedulable_nodes: int
    """Nodes that are Ready and not ``spec.unschedulable``."""
    nodes: int
    regions: tuple[str, ...]
    """Distinct ``topology.kubernetes.io/region`` labels of the nodes, sorted."""


def pod_count(value: Any) -> int:
    """A pods quantity (``"110"``, ``110``, ``"1k"``) as an int; 0 when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)
    if not isinstance(value, str):
        return 0
    text = value.strip()
    number = text.rstrip("kMGi")
    suffix = text[len(number) :]
    if suffix not in _SUFFIXES or not number.isdigit():
        return 0
    return int(number) * _SUFFIXES[suffix]


def node_ready(node: Obj) -> bool:
    status = node.get("status") or {}
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def capacity_of(nodes: Iterable[Obj]) -> Capacity:
    total = schedulable = count = 0
    regions: set[str] = set()
    for node in nodes:
        count += 1
        labels = (node.get("metadata") or {}).get("labels") or {}
        region = labels.get(REGION_LABEL)
        if isinstance(region, str) and region:
            regions.add(region)
        if not node_ready(node) or (node.get("spec") or {}).get("unschedulable"):
            continue
        schedulable += 1
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        total += pod_count(allocatable.get("pods"))
    return Capacity(
        allocatable_pods=total, schedulable_nodes=schedulable, nodes=count, regions=tuple(sorted(regions))
    )
