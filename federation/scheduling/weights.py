"""Traffic weights: how much of a federated Service's traffic each region gets (DESIGN.md "Traffic").

A pure function over what the members report. Each region (member cluster) that runs the Service
gets a weight equal to the number of ready pods behind it there, so that requests spread as the
capacity to answer them does: a region with twice the ready pods gets twice the requests. A region
gets 0 when its cluster is Offline, cordoned, or stale (its reports cannot be trusted), when it has
no regional address yet, or when that address does not answer. Shares are the weights over their sum
(all 0 when no region can serve).

Invariants (hypothesis properties in tests/unit/test_traffic_weights.py): weights are non-negative
integers; an ineligible region's is 0; an eligible region's is its ready pods; shares are in [0, 1]
and sum to 1 whenever any weight is positive; the result does not depend on the order of the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Region:
    """One member cluster as the traffic of one Service sees it."""

    cluster: str
    ready_pods: int
    """Ready pods that the member's copy of the Service selects."""
    cluster_ready: bool = True
    cordoned: bool = False
    stale: bool = False
    address: str | None = None
    """``host:port`` of the regional load balancer (the member's ``status.loadBalancer.ingress``)."""
    answering: bool = True
    """Whether the regional address answered its last checks."""

    def reason(self) -> str | None:
        """Why this region gets no traffic (None: it may)."""
        if not self.cluster_ready:
            return "Offline"
        if self.cordoned:
            return "Cordoned"
        if self.stale:
            return "Stale"
        if not self.address:
            return "NoAddress"
        if not self.answering:
            return "NotAnswering"
        if self.ready_pods <= 0:
            return "NoReadyPods"
        return None


@dataclass(frozen=True)
class Weights:
    weights: Mapping[str, int] = field(hash=False)
    """Cluster -> weight (its ready pods, or 0)."""
    reasons: Mapping[str, str] = field(hash=False)
    """Cluster -> why its weight is 0."""

    def share(self, cluster: str) -> float:
        total = sum(self.weights.values())
        return self.weights.get(cluster, 0) / total if total else 0.0


def traffic_weights(regions: Sequence[Region]) -> Weights:
    """Each region's weight (see the module docstring)."""
    weights: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for region in sorted(regions, key=lambda r: r.cluster):
        why = region.reason()
        if why is None:
            weights[region.cluster] = int(region.ready_pods)
        else:
            weights[region.cluster] = 0
            reasons[region.cluster] = why
    return Weights(MappingProxyType(weights), MappingProxyType(reasons))
