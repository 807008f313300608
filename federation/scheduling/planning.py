"""Placement plans: which member clusters get a federated object, and how many replicas each runs.

It exists so that the scheduling controller and ``fedctl plan`` answer "where does this go" from the
same inputs the same way: the object's annotations, what is known of each member cluster, and (for a
ReplicaSet) its total, current replicas and capacity estimates. Guarantees:

* Every cluster passed in is either eligible (a key of :attr:`Plan.replicas`) or excluded (a key of
  :attr:`Plan.excluded`, with one reason), never both; both mappings are sorted by cluster name.
* Reasons, first that applies: ``Offline`` (not ready: Offline or unknown health), ``Cordoned``
  (``spec.unschedulable``, holding nothing it may keep), ``SelectorMismatch`` (the cluster selector
  does not match its labels), ``NotInPreferences`` (a ReplicaSet's preferences name neither it nor
  ``*``).
* A cordoned cluster gets nothing new, as a cordoned node: it keeps what it holds now (``current``:
  replicas, or for a Namespace or Secret any value above 0 for "has a copy") unless the ReplicaSet
  asks for ``rebalance``, which moves its replicas off it (how a region is drained).
* ``total=None`` (a Namespace or Secret): every eligible cluster maps to 0 and the replica-set
  preferences are not read at all (a bad one is not this object's error). ``total`` an integer (a
  ReplicaSet): the division of ``division.divide`` over the eligible clusters, with weight and
  bounds from the preferences, ``capacity`` (absent: unbounded; a negative estimate counts as 0) and
  ``current`` (absent: 0). Replicas running in an excluded cluster are not counted as current, so
  they are divided among the eligible clusters (failover).
* Equal claims (a remainder that does not divide evenly, equal weights) are settled in an order of
  the eligible clusters that is the object's own when ``key`` names it (``namespace/name``):
  rendezvous hashing, a digest of the key and each cluster's name, highest first, the name breaking
  the rare equal digest (:func:`tie_order`); Federation v1's and KubeFed's planners did the same.
  Without a key, cluster name order. Why: with name order every object's remainder went to the
  same clusters: 1,000 ReplicaSets of 1-3 replicas over 10 clusters left 7 of them empty, and when
  the first failed, all 1,000 of its replicas went to the second (one cluster took every write of
  the failover, and every replica). With the object's own order the remainders spread evenly, and
  the replicas of a failed cluster spread over the others, each object's going to its next
  cluster in its own order.
* A bad annotation raises :class:`PlacementError`; the same inputs always give the same plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from federation.apis import CLUSTER_SELECTOR, REPLICA_SET_PREFERENCES
from federation.scheduling.division import Target, divide
from federation.scheduling.preferences import parse_preferences
from federation.scheduling.selection import parse_cluster_selector, selector_matches

OFFLINE = "Offline"
CORDONED = "Cordoned"
SELECTOR_MISMATCH = "SelectorMismatch"
NOT_IN_PREFERENCES = "NotInPreferences"

_NOTHING: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True)
class ClusterState:
    """What the controllers know of a member cluster."""

    name: str
    labels: Mapping[str, str] = field(hash=False)
    ready: bool
    """False: Offline or unknown health."""
    cordoned: bool
    """The Cluster's ``spec.unschedulable``."""


@dataclass(frozen=True)
class Plan:
    """Eligible cluster -> replicas, the shortfall, and excluded cluster -> why."""

    replicas: Mapping[str, int] = field(hash=False)
    unschedulable: int
    excluded: Mapping[str, str] = field(hash=False)


def object_key(namespace: str, name: str) -> str:
    """The ``key`` of :func:`plan` for an object: ``namespace/name``, or ``name`` when cluster-scoped."""
    return f"{namespace}/{name}" if namespace else name


def tie_order(key: str, names: Sequence[str]) -> list[str]:
    """``names`` in the order that settles equal claims for the object ``key``: highest digest of
    ``key`` and the name first (BLAKE2b, the same in every process and release)."""

    def digest(name: str) -> bytes:
        return hashlib.blake2b(f"{key}\0{name}".encode(), digest_size=8).digest()

    return sorted(names, key=lambda name: (-int.from_bytes(digest(name), "big"), name))


def plan(
    *,
    annotations: Mapping[str, str],
    clusters: Sequence[ClusterState],
    total: int | None,
    current: Mapping[str, int] = _NOTHING,
    capacity: Mapping[str, int] = _NOTHING,
    key: str | None = None,
) -> Plan:
    """The placement of one federated object (see the module docstring); ``key`` is the object's
    ``namespace/name`` (or ``name``), which orders the clusters for equal claims."""
    requirements = parse_cluster_selector(annotations.get(CLUSTER_SELECTOR))
    preferences = parse_preferences(annotations.get(REPLICA_SET_PREFERENCES)) if total is not None else None
    by_name: dict[str, ClusterState] = {}
    for cluster in clusters:
        if cluster.name in by_name:
            raise ValueError(f"cluster {cluster.name!r} is listed twice")
        by_name[cluster.name] = cluster
    eligible: list[str] = []
    excluded: dict[str, str] = {}
    held: set[str] = set()
    """Cordoned clusters that keep what they hold (nothing new goes there)."""
    rebalance = preferences is not None and preferences.rebalance
    for name in sorted(by_name):
        cluster = by_name[name]
        if not cluster.ready:
            excluded[name] = OFFLINE
        elif cluster.cordoned and (rebalance or current.get(name, 0) <= 0):
            excluded[name] = CORDONED
        elif not selector_matches(requirements, cluster.labels):
            excluded[name] = SELECTOR_MISMATCH
        elif preferences is not None and preferences.for_cluster(name) is None:
            excluded[name] = NOT_IN_PREFERENCES
        else:
            eligible.append(name)
            if cluster.cordoned:
                held.add(name)
    if total is None or preferences is None:
        return Plan(MappingProxyType(dict.fromkeys(eligible, 0)), 0, MappingProxyType(excluded))
    targets = []
    for name in eligible:
        preference = preferences.for_cluster(name)
        assert preference is not None  # NotInPreferences above
        estimate = capacity.get(name)
        if name in held:  # cordoned: what it runs stays, nothing more
            estimate = current.get(name, 0) if estimate is None else min(estimate, current.get(name, 0))
        targets.append(
            Target(
                name=name,
                weight=preference.weight,
                min_replicas=preference.min_replicas,
                max_replicas=preference.max_replicas,
                capacity=None if estimate is None else max(0, estimate),
                current=current.get(name, 0),
            )
        )
    order = None if key is None else tie_order(key, eligible)
    division = divide(total, targets, rebalance=preferences.rebalance, order=order)
    return Plan(division.replicas, division.unschedulable, MappingProxyType(excluded))
