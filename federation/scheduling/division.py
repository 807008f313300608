"""Replica division: how many of a ReplicaSet's replicas each eligible cluster runs.

It exists as one pure function, :func:`divide`, that the scheduling controller and ``fedctl plan``
share (DESIGN.md "Replica division"). Semantics:

Bounds of a :class:`Target`. ``upper`` is ``min(max_replicas, capacity)`` (None: unbounded) when
``weight > 0``; a cluster of weight 0 only ever gets up to ``min_replicas`` (still capped by
capacity). ``lower`` is ``min(min_replicas, upper)``. ``capacity`` counts every replica of this
workload the cluster can hold, including those it runs now.

How many are placed. ``placed = min(total, sum(upper))``; the rest, ``total - placed``, is reported
as :attr:`Division.unschedulable`, never dropped silently.

Ideal division (``rebalance=True``; it does not depend on ``current``). Minimums first: every
cluster gets ``lower``; the rest is divided by weight with the Sainte-Laguë (Webster) method, never
past a cluster's ``upper``, what a capped cluster cannot take spilling to the others in proportion
to their weights, equal claims settled in the tie order: cluster name by default, the object's own
order of the clusters when the planner passes one (see ``planning`` and ``apportionment``). When the
total does not even cover the minimums, the minimums themselves are divided: each cluster's bounds become
``[0, lower]`` and its weight its ``lower``.

Least movement (``rebalance=False``). Replicas running in a target stay there unless bounds force
a move. With ``kept = min(current, upper)`` and ``base = max(kept, lower)`` (in the regime where
the minimums cannot be met: ``base = min(current, lower)``):

* ``placed >= sum(base)``: every cluster keeps ``base``; the extra continues the same Sainte-Laguë
  bidding from there (a cluster's bid counts the replicas it holds above its minimum), so it goes
  to the clusters furthest below their weighted share, within their room.
* ``placed < sum(base)``: no cluster gets more than ``base`` (it only scales down, nothing moves);
  the replicas to remove are taken from the clusters in proportion to how far each is above its
  ideal share (Sainte-Laguë again, ties in the tie order), and no cluster falls below its ideal share, hence
  never below ``lower``.

Consequences, each a property test in ``tests/unit/test_scheduling_properties.py``: the replicas
plus the shortfall equal the total; the shortfall is ``max(0, total - sum(upper))``; each cluster
lies in ``[lower, upper]`` (in ``[0, lower]`` when the minimums cannot be met); every target name
is in the result; the same targets in any order give the same result; total 0 gives all zeros; no
targets gives a shortfall of the whole total. A plan that equals the ideal division stays put
(``rebalance=False`` with ``current`` equal to the ideal result returns ``current``), and scaling
such a plan up or down lands on the ideal division for the new total without moving replicas
between clusters (the method is house-monotone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from federation.scheduling.apportionment import apportion


@dataclass(frozen=True)
class Target:
    """One eligible cluster as the division sees it."""

    name: str
    weight: int
    min_replicas: int = 0
    max_replicas: int | None = None
    capacity: int | None = None
    """Replicas of this workload the cluster can hold in all (current ones included); None: unbounded."""
    current: int = 0
    """Replicas this workload has there now."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a target needs a cluster name")
        counts = (self.weight, self.min_replicas, self.max_replicas, self.capacity, self.current)
        if any(count is not None and count < 0 for count in counts):
            raise ValueError(f"negative weight or replica count in {self}")

    @property
    def upper(self) -> int | None:
        """The most replicas this cluster may get (None: unbounded)."""
        limits = [self.capacity]
        limits.append(self.max_replicas if self.weight > 0 else self.min_replicas)
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None

    @property
    def lower(self) -> int:
        """The replicas this cluster gets before any are divided by weight."""
        upper = self.upper
        return self.min_replicas if upper is None else min(self.min_replicas, upper)


@dataclass(frozen=True)
class Division:
    """Replicas per target (every target named, 0 allowed) and the shortfall."""

    replicas: Mapping[str, int] = field(hash=False)
    unschedulable: int


def _room(upper: int | None, held: int) -> int | None:
    return None if upper is None else upper - held


def _share(
    placed: int,
    *,
    lower: Mapping[str, int],
    upper: Mapping[str, int | None],
    weights: Mapping[str, int],
    current: Mapping[str, int],
    rebalance: bool,
    order: Sequence[str] | None,
) -> dict[str, int]:
    """The division of ``placed`` (``sum(lower) <= placed <= sum(upper)``) as the module docstring says."""
    names = sorted(lower)
    above = apportion(
        placed - sum(lower.values()),
        weights,
        held={},
        room={name: _room(upper[name], lower[name]) for name in names},
        order=order,
    )
    ideal = {name: lower[name] + above[name] for name in names}
    if rebalance:
        return ideal
    base = {}
    for name in names:
        top = upper[name]
        kept = current[name] if top is None else min(current[name], top)
        base[name] = max(kept, lower[name])
    if placed >= sum(base.values()):
        extra = apportion(
            placed - sum(base.values()),
            weights,
            held={name: base[name] - lower[name] for name in names},
            room={name: _room(upper[name], base[name]) for name in names},
            order=order,
        )
        return {name: base[name] + extra[name] for name in names}
    excess = {name: max(0, base[name] - ideal[name]) for name in names}
    cut = apportion(sum(base.values()) - placed, excess, held={}, room=dict(excess), order=order)
    return {name: base[name] - cut[name] for name in names}


def divide(
    total: int, targets: Sequence[Target], *, rebalance: bool, order: Sequence[str] | None = None
) -> Division:
    """Divide ``total`` replicas among ``targets``; equal claims are settled in ``order`` (every
    target's name once; None: name order). Raises ValueError on a negative total, a cluster named
    twice or an order that does not list exactly the targets."""
    if total < 0:
        raise ValueError(f"cannot divide a negative number of replicas: {total}")
    by_name: dict[str, Target] = {}
    for target in targets:
        if target.name in by_name:
            raise ValueError(f"cluster {target.name!r} is a target twice")
        by_name[target.name] = target
    names = sorted(by_name)
    lower = {name: by_name[name].lower for name in names}
    upper = {name: by_name[name].upper for name in names}
    current = {name: by_name[name].current for name in names}
    bounded = [limit for limit in upper.values() if limit is not None]
    placed = total if len(bounded) < len(names) else min(total, sum(bounded))
    if placed >= sum(lower.values()):
        weights = {name: by_name[name].weight for name in names}
        replicas = _share(
            placed,
            lower=lower,
            upper=upper,
            weights=weights,
            current=current,
            rebalance=rebalance,
            order=order,
        )
    else:  # the minimums cannot all be met: divide the minimums themselves
        replicas = _share(
            placed,
            lower=dict.fromkeys(names, 0),
            upper=dict(lower),
            weights=lower,
            current=current,
            rebalance=rebalance,
            order=order,
        )
    return Division(MappingProxyType({name: replicas[name] for name in names}), total - placed)
