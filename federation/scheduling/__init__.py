"""Placement and replica division: pure logic, no I/O (DESIGN.md "Placement", "Replica division").

The controllers and ``fedctl plan`` ask this package where a federated object goes: :func:`plan`
reads the placement annotations (:func:`parse_preferences`, :func:`parse_cluster_selector`), drops
the clusters that cannot take it, and divides a ReplicaSet's replicas (:func:`divide`). Everything is
a frozen value or a deterministic function of its arguments; a bad annotation is a
:class:`PlacementError` naming the annotation and the field.

The names below are the public surface. They load on first use (PEP 562), like
``federation.apimachinery``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from federation.apimachinery import lazy_exports

if TYPE_CHECKING:
    from federation.scheduling.division import Division, Target, divide
    from federation.scheduling.errors import PlacementError
    from federation.scheduling.planning import ClusterState, Plan, object_key, plan, tie_order
    from federation.scheduling.preferences import (
        DEFAULT_PREFERENCES,
        ClusterPreference,
        Preferences,
        parse_preferences,
    )
    from federation.scheduling.selection import Requirement, parse_cluster_selector, selector_matches
    from federation.scheduling.weights import Region, Weights, traffic_weights

_WHERE = {
    "division": ("Division", "Target", "divide"),
    "errors": ("PlacementError",),
    "planning": ("ClusterState", "Plan", "object_key", "plan", "tie_order"),
    "preferences": ("DEFAULT_PREFERENCES", "ClusterPreference", "Preferences", "parse_preferences"),
    "selection": ("Requirement", "parse_cluster_selector", "selector_matches"),
    "weights": ("Region", "Weights", "traffic_weights"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "DEFAULT_PREFERENCES",
    "ClusterPreference",
    "ClusterState",
    "Division",
    "PlacementError",
    "Plan",
    "Preferences",
    "Region",
    "Requirement",
    "Target",
    "Weights",
    "divide",
    "object_key",
    "parse_cluster_selector",
    "parse_preferences",
    "plan",
    "selector_matches",
    "tie_order",
    "traffic_weights",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
