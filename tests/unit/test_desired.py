"""What a member should hold of a federated object, and drift: tables and hypothesis properties."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.apimachinery import Obj
from federation.apis import DESIRED_HASH_ANNOTATION, FEDERATED_UID_ANNOTATION, MANAGED_BY_LABEL
from federation.controllers.desired import (
    digest,
    for_update,
    is_current,
    is_ours,
    member_object,
    was_edited,
)

keys = st.text(alphabet="abcdefghij-", min_size=1, max_size=8)
values = st.text(alphabet="abcdefghij0123456789", max_size=8)
label_maps = st.dictionaries(keys, values, max_size=4)


def replica_set(replicas: int = 3, *, labels: dict[str, str] | None = None, image: str = "nginx:1.27") -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "u-1",
            "resourceVersion": "17",
            "generation": 2,
            "labels": labels or {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "a"},
            "finalizers": ["federation.io/propagation"],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
        "status": {"replicas": 9, "readyReplicas": 9},
    }


def secret(data: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop", "uid": "u-2"},
        "type": "Opaque",
        "data": data,
    }


def as_member_stores(obj: Obj) -> Obj:
    """``obj`` as a member returns it: its own metadata, defaults filled in, a status of its own."""
    stored = copy.deepcopy(obj)
    m = stored["metadata"]
    m.update(uid="member-uid", resourceVersion="5", generation=1, creationTimestamp="2026-12-06T00:00:00Z")
    if stored["kind"] == "ReplicaSet":
        for container in stored["spec"]["template"]["spec"]["containers"]:
            container.setdefault("imagePullPolicy", "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
        stored["spec"]["template"]["spec"].setdefault("restartPolicy", "Always")
        stored["status"] = {"replicas": 1, "readyReplicas": 0, "observedGeneration": 1}
    return stored


def test_the_member_copy_carries_the_share_and_the_federations_marks() -> None:
    desired = member_object(replica_set(9), replicas=4)
    assert desired["spec"]["replicas"] == 4
    m = desired["metadata"]
    assert m["labels"][MANAGED_BY_LABEL] == "federation"
    assert desired["spec"]["template"]["metadata"]["labels"][MANAGED_BY_LABEL] == "federation"
    assert m["annotations"][FEDERATED_UID_ANNOTATION] == "u-1"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in m["annotations"]
    assert m["annotations"]["team"] == "a"
    for field in ("uid", "resourceVersion", "finalizers", "generation"):
        assert field not in m
    assert "status" not in desired


def test_kubectls_record_of_a_secret_stays_in_the_federation() -> None:
    s = secret({"password": "c2VjcmV0"})
    s["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": '{"data": "..."}'}
    desired = member_object(s)
    assert "kubectl.kubernetes.io/last-applied-configuration" not in desired["metadata"]["annotations"]
    assert desired["data"] == {"password": "c2VjcmV0"}


@pytest.mark.parametrize(
    ("edit", "current"),
    [
        (lambda o: None, True),
        (lambda o: o["spec"].__setitem__("replicas", 7), False),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("image", "evil:1"), False),
        (lambda o: o["metadata"]["labels"].pop("app"), False),
        (lambda o: o["metadata"]["annotations"].__setitem__("team", "b"), False),
        (lambda o: o["metadata"]["labels"].__setitem__("extra", "x"), True),
        (lambda o: o["status"].__setitem__("readyReplicas", 3), True),
    ],
    ids=["untouched", "replicas", "image", "label-removed", "annotation-changed", "label-added", "status"],
)
def test_what_counts_as_a_difference(edit: Any, current: bool) -> None:
    desired = member_object(replica_set(), replicas=3)
    stored = as_member_stores(desired)
    edit(stored)
    assert is_current(stored, desired) is current


def test_a_secret_with_an_extra_key_is_not_current() -> None:
    desired = member_object(secret({"a": "MQ=="}))
    stored = as_member_stores(desired)
    stored["data"]["b"] = "Mg=="
    assert not is_current(stored, desired)


def test_drift_is_an_edit_of_what_the_federation_wrote_not_a_change_of_the_federated_object() -> None:
    desired = member_object(replica_set(), replicas=3)
    stored = as_member_stores(desired)
    stored["spec"]["replicas"] = 5
    assert was_edited(stored, desired)
    changed = member_object(replica_set(image="nginx:1.28"), replicas=3)
    assert not was_edited(as_member_stores(desired), changed)
    assert not is_current(as_member_stores(desired), changed)


def test_an_update_keeps_the_members_version_and_status() -> None:
    desired = member_object(replica_set(), replicas=3)
    stored = as_member_stores(desired)
    body = for_update(desired, stored)
    assert body["metadata"]["resourceVersion"] == "5"
    assert body["status"] == stored["status"]
    assert "resourceVersion" not in desired["metadata"]


def test_ours_is_the_label_and_the_uid() -> None:
    desired = member_object(secret({}))
    assert is_ours(desired)
    assert is_ours(desired, uid="u-2")
    assert not is_ours(desired, uid="other")
    assert not is_ours(secret({}))


@settings(max_examples=150, deadline=None)
@given(labels=label_maps, annotations=label_maps, data=label_maps, replicas=st.integers(0, 50))
def test_a_copy_as_the_member_stores_it_is_current_and_not_drift(
    labels: dict[str, str], annotations: dict[str, str], data: dict[str, str], replicas: int
) -> None:
    rs = replica_set(labels={**labels, "app": "web"})
    rs["metadata"]["annotations"] = annotations
    for federated, share in ((rs, replicas), (secret(data), None)):
        before = copy.deepcopy(federated)
        desired = member_object(federated, replicas=share)
        assert federated == before  # never mutates what it read
        stored = as_member_stores(desired)
        assert is_current(stored, desired)
        assert not was_edited(stored, desired)


@settings(max_examples=100, deadline=None)
@given(data=label_maps)
def test_the_digest_does_not_depend_on_key_order(data: dict[str, str]) -> None:
    reordered = dict(reversed(list(data.items())))
    assert digest({"data": data}) == digest({"data": reordered})
    assert (
        member_object(secret(data))["metadata"]["annotations"][DESIRED_HASH_ANNOTATION]
        == member_object(secret(reordered))["metadata"]["annotations"][DESIRED_HASH_ANNOTATION]
    )
