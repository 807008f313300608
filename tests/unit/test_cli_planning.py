"""``fedctl plan``'s computation: the controllers' division now and after losing clusters."""

from __future__ import annotations

import json
from typing import Any

from federation.cli.planning import (
    plan_object,
    render_all,
    render_plan,
    unknown_clusters,
)

PREFS = "federation.kubernetes.io/replica-set-preferences"


def cluster(name: str, *, ready: bool = True, cordoned: bool = False, region: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/region": region or name}},
        "spec": {"unschedulable": cordoned},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


CLUSTERS = [cluster("a"), cluster("b"), cluster("c")]


def rs(replicas: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations or {}},
        "spec": {"replicas": replicas},
    }


def test_a_new_replicaset_now_and_after_losing_one() -> None:
    result = plan_object(rs(6), CLUSTERS, placement=None, fail=["a"], default_namespace="default")
    assert result.now is not None
    assert result.after is not None
    assert dict(result.now.replicas) == {"a": 2, "b": 2, "c": 2}
    assert dict(result.after.replicas) == {"b": 3, "c": 3}
    assert dict(result.after.excluded) == {"a": "Offline"}
    assert render_plan(result, ["a"]).splitlines() == [
        "ReplicaSet shop/web (new, 6 replicas)",
        "CLUSTER    NOW   IF a FAILS",
        "a          2     - (Offline) (-2)",
        "b          2     3 (+1)",
        "c          2     3 (+1)",
        "UNPLACED   0     0",
    ]


def test_an_existing_placement_is_where_replicas_stay_without_rebalance() -> None:
    placement = {"spec": {"clusters": [{"name": "a", "replicas": 4}, {"name": "b", "replicas": 2}]}}
    result = plan_object(rs(6), CLUSTERS, placement=placement, fail=[], default_namespace="default")
    assert result.now is not None
    assert result.after is None
    assert dict(result.now.replicas) == {"a": 4, "b": 2, "c": 0}
    assert "(exists, 6 replicas)" in render_plan(result, [])


def test_bounds_leave_replicas_unplaced_after_a_loss() -> None:
    prefs = json.dumps({"clusters": {"a": {"maxReplicas": 2}, "b": {"maxReplicas": 2}}})
    result = plan_object(rs(4, {PREFS: prefs}), CLUSTERS, placement=None, fail=["b"], default_namespace="x")
    assert result.now is not None
    assert result.after is not None
    assert (result.now.unschedulable, result.after.unschedulable) == (0, 2)
    assert dict(result.now.excluded) == {"c": "NotInPreferences"}
    assert render_plan(result, ["b"]).splitlines()[-1].split() == ["UNPLACED", "0", "2"]


def test_cordoned_and_offline_clusters_are_excluded_now() -> None:
    clusters = [cluster("a", cordoned=True), cluster("b", ready=False), cluster("c")]
    result = plan_object(rs(3), clusters, placement=None, fail=[], default_namespace="default")
    assert result.now is not None
    assert dict(result.now.replicas) == {"c": 3}
    assert dict(result.now.excluded) == {"a": "Cordoned", "b": "Offline"}


def test_kinds_without_replicas_and_a_bad_annotation() -> None:
    secret = {"kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}}
    result = plan_object(secret, CLUSTERS, placement=None, fail=["c"], default_namespace="default")
    assert render_plan(result, ["c"]).splitlines()[1:] == [
        "CLUSTER   NOW   IF c FAILS",
        "a         yes   yes",
        "b         yes   yes",
        "c         yes   - (Offline)",
    ]
    bad = rs(2, {PREFS: "{not json"})
    failed = plan_object(bad, CLUSTERS, placement=None, fail=[], default_namespace="default")
    assert failed.error is not None
    assert PREFS in failed.error
    assert render_plan(failed, []).splitlines()[1].startswith("error: ")
    doc = json.loads(render_all([failed], [], output="json"))
    assert doc["objects"][0]["error"] == failed.error


def test_unknown_failed_clusters() -> None:
    assert unknown_clusters(["a", "zz"], CLUSTERS) == ["zz"]
