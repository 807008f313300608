"""Replica-set preferences: the ``federation.kubernetes.io/replica-set-preferences`` annotation.

It exists to turn the v1-compatible JSON a user writes (DESIGN.md "Placement")::

    {"rebalance": true, "clusters": {"*": {"weight": 1}, "tokyo": {"weight": 2, "minReplicas": 1}}}

into a frozen :class:`Preferences` the division reads. Guarantees:

* No annotation (``None``, ``""`` or only whitespace) is :data:`DEFAULT_PREFERENCES`: every
  eligible cluster with weight 1, rebalance off. An annotation without ``clusters`` (or with an
  empty ``clusters`` object) means the same default entry ``"*": {"weight": 1}``, so
  ``{"rebalance": true}`` alone does not silently place nothing.
* Every field is checked: ``rebalance`` a boolean; ``weight``, ``minReplicas`` and ``maxReplicas``
  JSON integers in [0, 2^63-1] (``maxReplicas`` may be ``null``: unbounded); ``minReplicas`` at most
  ``maxReplicas``; cluster names non-empty; no unknown field (a typo such as ``minreplicas`` is an
  error, not ignored). The first problem found (keys in sorted order) raises :class:`PlacementError`
  with the field path, e.g. ``clusters.a.weight: must be a non-negative integer``.
* :attr:`Preferences.clusters` is sorted by name, so equal annotations give equal values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from federation.apis import REPLICA_SET_PREFERENCES
from federation.scheduling.errors import (
    PlacementError,
    decode,
    json_object,
    member,
    non_negative_int,
)

ANY_CLUSTER = "*"
"""The preferences entry for every cluster that has no entry of its own."""


@dataclass(frozen=True)
class ClusterPreference:
    """What a user asked for one cluster (or for ``*``)."""

    weight: int = 1
    min_replicas: int = 0
    max_replicas: int | None = None

    def __post_init__(self) -> None:
        if self.weight < 0 or self.min_replicas < 0:
            raise ValueError(f"weight and min_replicas must be non-negative: {self}")
        if self.max_replicas is not None and not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"max_replicas must be at least min_replicas: {self}")


@dataclass(frozen=True)
class Preferences:
    """The parsed annotation: the rebalance flag and per-cluster preferences, sorted by name."""

    rebalance: bool = False
    clusters: tuple[tuple[str, ClusterPreference], ...] = ()

    def __post_init__(self) -> None:
        names = [name for name, _ in self.clusters]
        if len(set(names)) != len(names):
            raise ValueError(f"a cluster appears twice in preferences: {sorted(names)}")
        object.__setattr__(self, "clusters", tuple(sorted(self.clusters, key=lambda item: item[0])))

    def for_cluster(self, name: str) -> ClusterPreference | None:
        """The cluster's own entry, else the ``*`` entry, else None (the cluster gets nothing)."""
        fallback = None
        for key, preference in self.clusters:
            if key == name:
                return preference
            if key == ANY_CLUSTER:
                fallback = preference
        return fallback


DEFAULT_PREFERENCES = Preferences(rebalance=False, clusters=((ANY_CLUSTER, ClusterPreference()),))
"""No annotation: every eligible cluster weight 1, no minimum, no maximum, least movement."""

_TOP_FIELDS = ("clusters", "rebalance")
_CLUSTER_FIELDS = ("maxReplicas", "minReplicas", "weight")


def _error(field: str, message: str) -> PlacementError:
    return PlacementError(REPLICA_SET_PREFERENCES, field, message)


def _cluster_preference(field: str, raw: Any) -> ClusterPreference:
    entry = json_object(REPLICA_SET_PREFERENCES, field, raw, allowed=_CLUSTER_FIELDS)
    weight = non_negative_int(REPLICA_SET_PREFERENCES, f"{field}.weight", entry.get("weight", 1))
    least = non_negative_int(REPLICA_SET_PREFERENCES, f"{field}.minReplicas", entry.get("minReplicas", 0))
    most: int | None = None
    if entry.get("maxReplicas") is not None:
        most = non_negative_int(REPLICA_SET_PREFERENCES, f"{field}.maxReplicas", entry["maxReplicas"])
        if least > most:
            raise _error(
                f"{field}.minReplicas",
                f"must be less than or equal to maxReplicas ({least} > {most})",
            )
    return ClusterPreference(weight=weight, min_replicas=least, max_replicas=most)


def parse_preferences(text: str | None) -> Preferences:
    """The preferences an annotation value asks for; raises :class:`PlacementError` when invalid."""
    if text is None or not text.strip():
        return DEFAULT_PREFERENCES
    raw = json_object(REPLICA_SET_PREFERENCES, "", decode(REPLICA_SET_PREFERENCES, text), allowed=_TOP_FIELDS)
    rebalance = raw.get("rebalance", False)
    if not isinstance(rebalance, bool):
        raise _error("rebalance", "must be a boolean")
    clusters = raw.get("clusters")
    if clusters is None or clusters == {}:
        return Preferences(rebalance=rebalance, clusters=DEFAULT_PREFERENCES.clusters)
    if not isinstance(clusters, dict):
        raise _error("clusters", 'must be a JSON object of cluster name (or "*") to preferences')
    entries = []
    for name in sorted(clusters):
        if not name.strip():
            raise _error(member("clusters", name), "cluster name must not be empty")
        entries.append((name, _cluster_preference(member("clusters", name), clusters[name])))
    return Preferences(rebalance=rebalance, clusters=tuple(entries))
