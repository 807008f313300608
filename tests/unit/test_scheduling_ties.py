"""Equal claims in replica division: settled in each object's own order of the clusters.

With the clusters in name order for every object, 1,000 one-replica ReplicaSets over 10 clusters all
went to the first name, and when it failed, all 1,000 replicas went to the second. The planner now
passes an order per object (rendezvous hashing of ``namespace/name`` and the cluster's name):
``divide`` with an order is exactly ``divide`` over clusters renamed into that order, and over many
objects the remainders, and a failed cluster's replicas, spread evenly.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.scheduling import ClusterState, Target, divide, object_key, plan, tie_order
from tests.unit.test_scheduling_properties import targets, totals

SMALL = settings(max_examples=150, deadline=None)
CLUSTERS = [f"c{i}" for i in range(10)]


def renamed(target: Target, name: str) -> Target:
    t = target
    return Target(name, t.weight, t.min_replicas, t.max_replicas, t.capacity, t.current)


@SMALL
@given(totals, targets(), st.booleans(), st.randoms(use_true_random=False))
def test_an_order_is_a_renaming(total: int, ts: list[Target], rebalance: bool, rnd: object) -> None:
    order = [t.name for t in ts]
    rnd.shuffle(order)  # type: ignore[attr-defined]
    alias = {name: f"n{i:02d}" for i, name in enumerate(order)}  # name order == ``order``
    plain = divide(total, [renamed(t, alias[t.name]) for t in ts], rebalance=rebalance)
    ordered = divide(total, ts, rebalance=rebalance, order=order)
    assert dict(ordered.replicas) == {name: plain.replicas[alias[name]] for name in order}
    assert ordered.unschedulable == plain.unschedulable


@SMALL
@given(totals, targets(), st.booleans())
def test_name_order_is_the_default(total: int, ts: list[Target], rebalance: bool) -> None:
    names = sorted(t.name for t in ts)
    assert divide(total, ts, rebalance=rebalance, order=names) == divide(total, ts, rebalance=rebalance)


def test_an_order_must_list_exactly_the_clusters() -> None:
    ts = [Target("a", 1), Target("b", 1)]
    with pytest.raises(ValueError, match="tie order"):
        divide(3, ts, rebalance=True, order=["a"])
    with pytest.raises(ValueError, match="tie order"):
        divide(3, ts, rebalance=True, order=["a", "b", "c"])


@SMALL
@given(st.text(max_size=40), st.lists(st.sampled_from(CLUSTERS), unique=True))
def test_tie_order_is_a_deterministic_permutation(key: str, names: list[str]) -> None:
    order = tie_order(key, names)
    assert sorted(order) == sorted(names)
    assert tie_order(key, list(reversed(names))) == order


def ready(*names: str) -> list[ClusterState]:
    return [ClusterState(name=n, labels={}, ready=True, cordoned=False) for n in names]


def test_one_replica_each_spreads_over_the_clusters() -> None:
    where: Counter[str] = Counter()
    for i in range(1000):
        decided = plan(annotations={}, clusters=ready(*CLUSTERS), total=1, key=object_key("shop", f"web-{i}"))
        (cluster,) = [c for c, n in decided.replicas.items() if n]
        where[cluster] += 1
    assert set(where) == set(CLUSTERS)
    assert all(60 <= n <= 140 for n in where.values()), where
    # The same object is placed the same way every time, and in name order without a key.
    key = object_key("shop", "web-7")
    again = [plan(annotations={}, clusters=ready(*CLUSTERS), total=1, key=key).replicas for _ in range(3)]
    assert again[0] == again[1] == again[2]
    assert plan(annotations={}, clusters=ready(*CLUSTERS), total=1).replicas["c0"] == 1


def test_a_failed_clusters_replicas_spread_over_the_others() -> None:
    """10 replicas each, one per cluster; c0 fails: each object moves its one replica to its own
    next cluster, and nothing else moves (no rebalance)."""
    receivers: Counter[str] = Counter()
    survivors = [*ready(*CLUSTERS[1:]), ClusterState(name="c0", labels={}, ready=False, cordoned=False)]
    for i in range(1000):
        key = object_key("shop", f"web-{i}")
        before = plan(annotations={}, clusters=ready(*CLUSTERS), total=10, key=key).replicas
        assert set(before.values()) == {1}
        current = {c: n for c, n in before.items() if c != "c0"}
        after = plan(annotations={}, clusters=survivors, total=10, current=current, key=key).replicas
        (grown,) = [c for c in after if after[c] == 2]
        assert all(after[c] == 1 for c in after if c != grown)
        receivers[grown] += 1
    assert set(receivers) == set(CLUSTERS[1:])
    assert all(70 <= n <= 160 for n in receivers.values()), receivers
