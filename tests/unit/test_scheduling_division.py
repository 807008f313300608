"""Replica division and placement plans: worked examples, each checked by hand."""

from __future__ import annotations

import json

import pytest

from federation.apis import CLUSTER_SELECTOR, REGION_LABEL, REPLICA_SET_PREFERENCES
from federation.scheduling import (
    ClusterState,
    Division,
    PlacementError,
    Plan,
    Target,
    divide,
    plan,
)

# The issue's check: a weight 2, b weight 1, c minReplicas 1 maxReplicas 2 (weight 1 by default).
# Minimums first: c 1. The other 9 by Sainte-Laguë bids w/(2h+1): a 2, b 1, c 1 (c's only seat
# left; b before c by name), a 2/3, a 2/5, b 1/3, a 2/7, a 2/9, b 1/5 -> a 5, b 3, c 1 (+1) = 2.
# So a:b is 5:3 of the 8 that c (capped at 2) leaves, the nearest to 2:1 that whole replicas allow.
ISSUE = (Target("a", 2), Target("b", 1), Target("c", 1, min_replicas=1, max_replicas=2))


def with_current(targets: tuple[Target, ...], current: dict[str, int]) -> tuple[Target, ...]:
    return tuple(
        Target(t.name, t.weight, t.min_replicas, t.max_replicas, t.capacity, current.get(t.name, 0))
        for t in targets
    )


DIVISIONS = [
    # (id, total, targets, rebalance, expected replicas, expected unschedulable)
    ("issue-10", 10, ISSUE, True, {"a": 5, "b": 3, "c": 2}, 0),
    ("issue-10-least-movement-from-nothing", 10, ISSUE, False, {"a": 5, "b": 3, "c": 2}, 0),
    # 10 -> 12 from the stable plan: nothing leaves a cluster; the two new go to a (bids 2/11, 2/13
    # beat b's 1/7), which is also the ideal division of 12.
    (
        "issue-scale-to-12",
        12,
        with_current(ISSUE, {"a": 5, "b": 3, "c": 2}),
        False,
        {"a": 7, "b": 3, "c": 2},
        0,
    ),
    ("issue-12-ideal", 12, ISSUE, True, {"a": 7, "b": 3, "c": 2}, 0),
    # 12 -> 10 back: the two removed come from a, the only cluster above its share of 10.
    (
        "issue-scale-back-to-10",
        10,
        with_current(ISSUE, {"a": 7, "b": 3, "c": 2}),
        False,
        {"a": 5, "b": 3, "c": 2},
        0,
    ),
    # b's weight 1 -> 3 with rebalance off: nothing is forced to move, nothing moves.
    (
        "weight-change-least-movement",
        10,
        (
            Target("a", 2, current=5),
            Target("b", 3, current=3),
            Target("c", 1, min_replicas=1, max_replicas=2, current=2),
        ),
        False,
        {"a": 5, "b": 3, "c": 2},
        0,
    ),
    # ... and with rebalance on: c 1, then 9 by bids b 3, a 2, b 1, c 1, a 2/3, b 3/5, b 3/7, a 2/5, b 1/3.
    (
        "weight-change-rebalance",
        10,
        (
            Target("a", 2, current=5),
            Target("b", 3, current=3),
            Target("c", 1, min_replicas=1, max_replicas=2, current=2),
        ),
        True,
        {"a": 3, "b": 5, "c": 2},
        0,
    ),
    # Scale up with a weight change and rebalance off: the 2 new go where the share is most short (b).
    (
        "weight-change-and-scale-up",
        12,
        (Target("a", 2, current=5), Target("b", 3, current=3), Target("c", 1, 1, 2, current=2)),
        False,
        {"a": 5, "b": 5, "c": 2},
        0,
    ),
    (
        "equal-weights-tie-by-name",
        4,
        (Target("c", 1), Target("b", 1), Target("a", 1)),
        True,
        {"a": 2, "b": 1, "c": 1},
        0,
    ),
    ("single-cluster", 7, (Target("only", 1),), True, {"only": 7}, 0),
    # Capacity spill: a holds 1 at most, its share of 9 is 3; the 2 it cannot take go to b and c.
    (
        "capacity-spill",
        9,
        (Target("a", 1, capacity=1), Target("b", 1), Target("c", 1)),
        True,
        {"a": 1, "b": 4, "c": 4},
        0,
    ),
    # Spill in proportion to weight: a capped at 2; the 10 left go 4:1 to b and c.
    (
        "capacity-spill-by-weight",
        12,
        (Target("a", 4, capacity=2), Target("b", 4), Target("c", 1)),
        True,
        {"a": 2, "b": 8, "c": 2},
        0,
    ),
    (
        "no-room-anywhere",
        5,
        (Target("a", 1, capacity=0), Target("b", 1, max_replicas=2)),
        True,
        {"a": 0, "b": 2},
        3,
    ),
    ("no-targets", 3, (), True, {}, 3),
    (
        "total-zero",
        0,
        (Target("a", 1, min_replicas=2, current=4), Target("b", 1)),
        False,
        {"a": 0, "b": 0},
        0,
    ),
    # Failover: a went away; its 5 go to the clusters that remain, within c's maximum of 2.
    (
        "failover",
        10,
        (Target("b", 1, current=3), Target("c", 1, 1, 2, current=2)),
        False,
        {"b": 8, "c": 2},
        0,
    ),
    # Weight 0: only the minimum, never more, even when others are full.
    (
        "weight-zero-gets-its-minimum",
        6,
        (Target("a", 1, max_replicas=3), Target("z", 0, min_replicas=2)),
        True,
        {"a": 3, "z": 2},
        1,
    ),
    ("weight-zero-no-minimum", 4, (Target("a", 1), Target("z", 0, current=3)), False, {"a": 4, "z": 0}, 0),
    # A minimum above capacity is capped by the capacity.
    (
        "minimum-capped-by-capacity",
        5,
        (Target("a", 1, min_replicas=4, capacity=1), Target("b", 1)),
        True,
        {"a": 1, "b": 4},
        0,
    ),
    # Minimums that the total cannot cover: the minimums are shared in proportion to themselves.
    (
        "minimums-above-total",
        3,
        (Target("a", 1, min_replicas=4), Target("b", 1, min_replicas=2)),
        True,
        {"a": 2, "b": 1},
        0,
    ),
    # ... and with rebalance off, running replicas stay where they are.
    (
        "minimums-above-total-least-movement",
        3,
        (Target("a", 1, min_replicas=4, current=0), Target("b", 1, min_replicas=2, current=2)),
        False,
        {"a": 1, "b": 2},
        0,
    ),
    # Scale down, rebalance off: remove from the clusters above their share (a 6 of an ideal 3, b 3
    # of an ideal 2 -> remove 3 and 1 in proportion 3:1), c stays.
    (
        "scale-down-in-proportion-to-excess",
        6,
        (Target("a", 1, current=6), Target("b", 1, current=3), Target("c", 1, current=1)),
        False,
        {"a": 3, "b": 2, "c": 1},
        0,
    ),
    # A minimum forces one move: b must have 2, so a gives up 2 although the total did not change.
    (
        "minimum-forces-a-move",
        6,
        (Target("a", 1, current=6), Target("b", 1, min_replicas=2)),
        False,
        {"a": 4, "b": 2},
        0,
    ),
    # Capacity shrank below what runs: the overflow goes elsewhere, the rest stays.
    (
        "capacity-below-current",
        8,
        (Target("a", 1, capacity=2, current=6), Target("b", 1, current=2)),
        False,
        {"a": 2, "b": 6},
        0,
    ),
    # Huge totals cost what small ones do.
    ("int32-max", 2**31 - 1, ISSUE, True, {"a": 1431655763, "b": 715827882, "c": 2}, 0),
]


@pytest.mark.parametrize(
    ("total", "targets", "rebalance", "replicas", "unschedulable"),
    [case[1:] for case in DIVISIONS],
    ids=[case[0] for case in DIVISIONS],
)
def test_divide(
    total: int,
    targets: tuple[Target, ...],
    rebalance: bool,
    replicas: dict[str, int],
    unschedulable: int,
) -> None:
    division = divide(total, targets, rebalance=rebalance)
    assert division == Division(replicas, unschedulable)
    assert list(division.replicas) == sorted(replicas)
    assert sum(division.replicas.values()) + division.unschedulable == total


def test_division_result_is_read_only_and_hashable() -> None:
    division = divide(3, [Target("a", 1)], rebalance=True)
    with pytest.raises(TypeError):
        division.replicas["a"] = 4  # type: ignore[index]
    assert hash(division) == hash(divide(3, [Target("a", 1)], rebalance=True))


@pytest.mark.parametrize(
    ("total", "targets"),
    [(-1, [Target("a", 1)]), (3, [Target("a", 1), Target("a", 2)])],
    ids=["negative-total", "cluster-twice"],
)
def test_divide_refuses_nonsense(total: int, targets: list[Target]) -> None:
    with pytest.raises(ValueError, match=r"negative|twice"):
        divide(total, targets, rebalance=True)


def test_target_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        Target("a", 1, current=-1)


# -- plan ------------------------------------------------------------------------------------------

TAIPEI = ClusterState("taipei", {REGION_LABEL: "asia-east1"}, ready=True, cordoned=False)
TOKYO = ClusterState("tokyo", {REGION_LABEL: "asia-northeast1"}, ready=True, cordoned=False)
IOWA = ClusterState("iowa", {REGION_LABEL: "us-central1"}, ready=True, cordoned=False)
DOWN = ClusterState("down", {REGION_LABEL: "asia-east1"}, ready=False, cordoned=True)
CORDONED = ClusterState("cordoned", {REGION_LABEL: "asia-east1"}, ready=True, cordoned=True)
ASIA = json.dumps([{"key": REGION_LABEL, "operator": "In", "values": ["asia-east1", "asia-northeast1"]}])
ALL = (TOKYO, IOWA, TAIPEI, DOWN, CORDONED)
EXCLUDED = {"cordoned": "Cordoned", "down": "Offline"}


def prefs(clusters: dict[str, dict[str, int]], *, rebalance: bool = False) -> str:
    return json.dumps({"rebalance": rebalance, "clusters": clusters})


PLANS = [
    # (id, annotations, total, current, capacity, expected plan)
    (
        "namespace-everywhere-eligible",
        {},
        None,
        {},
        {},
        Plan({"iowa": 0, "taipei": 0, "tokyo": 0}, 0, EXCLUDED),
    ),
    (
        "secret-selector",
        {CLUSTER_SELECTOR: ASIA, REPLICA_SET_PREFERENCES: "not even JSON"},  # preferences not read
        None,
        {},
        {},
        Plan({"taipei": 0, "tokyo": 0}, 0, {**EXCLUDED, "iowa": "SelectorMismatch"}),
    ),
    ("replicaset-default-weights", {}, 7, {}, {}, Plan({"iowa": 3, "taipei": 2, "tokyo": 2}, 0, EXCLUDED)),
    (
        "replicaset-selector-and-preferences",
        {
            CLUSTER_SELECTOR: ASIA,
            REPLICA_SET_PREFERENCES: prefs({"tokyo": {"weight": 2}, "taipei": {"weight": 1}}),
        },
        9,
        {},
        {},
        Plan({"taipei": 3, "tokyo": 6}, 0, {**EXCLUDED, "iowa": "SelectorMismatch"}),
    ),
    (
        "not-in-preferences",
        {REPLICA_SET_PREFERENCES: prefs({"tokyo": {"weight": 1}})},
        4,
        {},
        {},
        Plan({"tokyo": 4}, 0, {**EXCLUDED, "iowa": "NotInPreferences", "taipei": "NotInPreferences"}),
    ),
    (
        "star-entry-and-own-entry",
        {REPLICA_SET_PREFERENCES: prefs({"*": {"weight": 1}, "iowa": {"weight": 0}})},
        4,
        {},
        {},
        Plan({"iowa": 0, "taipei": 2, "tokyo": 2}, 0, EXCLUDED),
    ),
    # Failover: 3 of 6 ran in a cluster that went down; they go to the others, where the share is
    # most short (bids taipei 1, taipei 1/3 = tokyo 1/3 by name, tokyo), and nothing else moves.
    (
        "failover-from-offline",
        {},
        6,
        {"down": 3, "iowa": 2, "tokyo": 1},
        {},
        Plan({"iowa": 2, "taipei": 2, "tokyo": 2}, 0, EXCLUDED),
    ),
    (
        "capacity-and-shortfall",
        {},
        10,
        {},
        {"iowa": 1, "taipei": 2, "tokyo": -5},
        Plan({"iowa": 1, "taipei": 2, "tokyo": 0}, 7, EXCLUDED),
    ),
    (
        "rebalance-ignores-current",
        {REPLICA_SET_PREFERENCES: prefs({"*": {"weight": 1}}, rebalance=True)},
        6,
        {"iowa": 6},
        {},
        Plan({"iowa": 2, "taipei": 2, "tokyo": 2}, 0, EXCLUDED),
    ),
]


@pytest.mark.parametrize(
    ("annotations", "total", "current", "capacity", "expected"),
    [case[1:] for case in PLANS],
    ids=[case[0] for case in PLANS],
)
def test_plan(
    annotations: dict[str, str],
    total: int | None,
    current: dict[str, int],
    capacity: dict[str, int],
    expected: Plan,
) -> None:
    got = plan(annotations=annotations, clusters=ALL, total=total, current=current, capacity=capacity)
    assert got == expected
    assert list(got.replicas) == sorted(got.replicas)
    assert list(got.excluded) == sorted(got.excluded)
    assert set(got.replicas) | set(got.excluded) == {c.name for c in ALL}


def test_plan_no_clusters() -> None:
    assert plan(annotations={}, clusters=(), total=3) == Plan({}, 3, {})


def test_plan_bad_annotation_is_a_placement_error() -> None:
    with pytest.raises(PlacementError, match=r"^federation\.alpha\.kubernetes\.io/cluster-selector: "):
        plan(annotations={CLUSTER_SELECTOR: "{"}, clusters=ALL, total=None)
    with pytest.raises(PlacementError, match=r"clusters\.a\.weight: must be a non-negative integer$"):
        plan(annotations={REPLICA_SET_PREFERENCES: prefs({"a": {"weight": -1}})}, clusters=ALL, total=1)


def test_plan_refuses_a_cluster_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        plan(annotations={}, clusters=(TOKYO, TOKYO), total=None)
