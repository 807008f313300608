"""A cordoned cluster gets nothing new, keeps what it holds, and is drained by rebalance."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.apis import REPLICA_SET_PREFERENCES
from federation.scheduling import ClusterState, plan

A, B = ClusterState("a", {}, ready=True, cordoned=False), ClusterState("b", {}, ready=True, cordoned=False)
C = ClusterState("c", {}, ready=True, cordoned=True)


def prefs(*, rebalance: bool) -> dict[str, str]:
    return {REPLICA_SET_PREFERENCES: json.dumps({"rebalance": rebalance, "clusters": {"*": {"weight": 1}}})}


def test_a_cordoned_cluster_keeps_its_replicas_without_rebalance() -> None:
    got = plan(
        annotations=prefs(rebalance=False), clusters=[A, B, C], total=6, current={"a": 2, "b": 2, "c": 2}
    )
    assert dict(got.replicas) == {"a": 2, "b": 2, "c": 2}
    grown = plan(
        annotations=prefs(rebalance=False), clusters=[A, B, C], total=9, current={"a": 2, "b": 2, "c": 2}
    )
    assert grown.replicas["c"] == 2, "a scale-up adds nothing to a cordoned cluster"
    assert sum(grown.replicas.values()) == 9


def test_rebalance_drains_a_cordoned_cluster() -> None:
    got = plan(
        annotations=prefs(rebalance=True), clusters=[A, B, C], total=6, current={"a": 2, "b": 2, "c": 2}
    )
    assert dict(got.replicas) == {"a": 3, "b": 3}
    assert dict(got.excluded) == {"c": "Cordoned"}


def test_nothing_new_goes_to_a_cordoned_cluster() -> None:
    got = plan(annotations={}, clusters=[A, B, C], total=6, current={})
    assert dict(got.replicas) == {"a": 3, "b": 3}
    assert dict(got.excluded) == {"c": "Cordoned"}
    copies = plan(annotations={}, clusters=[A, B, C], total=None, current={"c": 1})
    assert set(copies.replicas) == {"a", "b", "c"}, "a Secret it already holds stays"
    assert "c" in plan(annotations={}, clusters=[A, B, C], total=None).excluded


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 40),
    current=st.dictionaries(st.sampled_from("abc"), st.integers(0, 20)),
    rebalance=st.booleans(),
)
def test_a_cordoned_cluster_never_gets_more_than_it_has(
    total: int, current: dict[str, int], rebalance: bool
) -> None:
    got = plan(annotations=prefs(rebalance=rebalance), clusters=[A, B, C], total=total, current=current)
    assert got.replicas.get("c", 0) <= current.get("c", 0)
    if rebalance:
        assert "c" not in got.replicas
    assert sum(got.replicas.values()) + got.unschedulable == total
