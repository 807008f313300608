"""JSON merge patch, JSON patch and strategic merge patch, with worked examples.

The strategic cases are the patches kubectl sends (``kubectl apply`` three-way patches with
``$setElementOrder``, ``kubectl patch`` by hand) with the results the Kubernetes apiserver gives.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.apimachinery.errors import ApiError
from federation.apimachinery.patching import json_patch, merge_patch, strategic_merge_patch
from federation.apimachinery.schema import SchemaSet, official_schemas

RS = "io.k8s.api.apps.v1.ReplicaSet"
FREE = "test.v1.Free"


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return official_schemas()


def replicaset(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": list(containers)},
            },
            **spec,
        },
    }


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return result


def pod_patch(**spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


WEB = {
    "name": "web",
    "image": "nginx:1.25",
    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
}
SIDECAR = {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "3600"]}


def has_directive(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k.startswith("$") or has_directive(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_directive(v) for v in value)
    return False


# ------------------------------------------------------------------------------------------------
# Strategic merge patch: worked examples (target, patch, check of the result)

SMP_CASES: list[tuple[str, dict[str, Any], dict[str, Any], Any]] = [
    (
        "container-image-by-name",
        replicaset(WEB, SIDECAR),
        pod_patch(containers=[{"name": "sidecar", "image": "busybox:1.37"}]),
        [
            {**WEB},
            {"name": "sidecar", "image": "busybox:1.37", "args": ["sleep", "3600"]},
        ],
    ),
    (
        "env-merged-by-name",
        replicaset(WEB),
        pod_patch(
            containers=[{"name": "web", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]
        ),
        [
            {
                "name": "web",
                "image": "nginx:1.25",
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "value": "3"},
                    {"name": "C", "value": "4"},
                ],
            }
        ],
    ),
    (
        "set-element-order-reorders",
        replicaset(WEB, SIDECAR),
        pod_patch(**{"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]}),
        [SIDECAR, WEB],
    ),
    (
        "set-element-order-places-new-item",
        replicaset(WEB, SIDECAR),
        pod_patch(
            **{
                "$setElementOrder/containers": [{"name": "web"}, {"name": "proxy"}, {"name": "sidecar"}],
                "containers": [{"name": "proxy", "image": "envoy:1.30"}],
            }
        ),
        [WEB, {"name": "proxy", "image": "envoy:1.30"}, SIDECAR],
    ),
    (
        "new-item-without-order-goes-first",  # as Kubernetes does (see the kubectl patch docs)
        replicaset(WEB, SIDECAR),
        pod_patch(containers=[{"name": "proxy", "image": "envoy:1.30"}]),
        [{"name": "proxy", "image": "envoy:1.30"}, WEB, SIDECAR],
    ),
    (
        "delete-container",
        replicaset(WEB, SIDECAR),
        pod_patch(
            **{
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"name": "sidecar", "$patch": "delete"}],
            }
        ),
        [WEB],
    ),
    (
        "replace-whole-list",
        replicaset(WEB, SIDECAR),
        pod_patch(containers=[{"name": "only", "image": "alpine"}, {"$patch": "replace"}]),
        [{"name": "only", "image": "alpine"}],
    ),
    (
        "list-without-strategy-replaced",
        replicaset(SIDECAR),
        pod_patch(containers=[{"name": "sidecar", "args": ["sleep", "10"]}]),
        [{"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "10"]}],
    ),
    (
        "ports-merged-by-container-port",
        replicaset({"name": "web", "image": "nginx", "ports": [{"containerPort": 80, "name": "http"}]}),
        pod_patch(containers=[{"name": "web", "ports": [{"containerPort": 443, "name": "https"}]}]),
        [
            {
                "name": "web",
                "image": "nginx",
                "ports": [{"containerPort": 443, "name": "https"}, {"containerPort": 80, "name": "http"}],
            }
        ],
    ),
    (
        "null-deletes-container-field",
        replicaset(SIDECAR),
        pod_patch(containers=[{"name": "sidecar", "args": None}]),
        [{"name": "sidecar", "image": "busybox:1.36"}],
    ),
]


@pytest.mark.parametrize(
    ("target", "patch", "expected"), [c[1:] for c in SMP_CASES], ids=[c[0] for c in SMP_CASES]
)
def test_strategic_merge_patch_containers(
    schemas: SchemaSet, target: dict[str, Any], patch: dict[str, Any], expected: Any
) -> None:
    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    result = strategic_merge_patch(target, patch, schemas, RS)
    assert containers_of(result) == expected
    assert not has_directive(result)
    assert target == before_target  # inputs untouched
    assert patch == before_patch
    # everything outside the containers is as it was
    assert result["metadata"] == target["metadata"]
    assert result["spec"]["replicas"] == 2


MAP_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "labels-merge-null-deletes",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"b": None, "c": "3"}}},
        {"metadata": {"labels": {"a": "1", "c": "3"}}},
    ),
    (
        "null-for-missing-key-is-ignored",
        {"metadata": {"name": "x"}},
        {"metadata": {"labels": None}},
        {"metadata": {"name": "x"}},
    ),
    (
        "patch-replace-on-map",
        {"spec": {"template": {"metadata": {"labels": {"a": "1"}, "annotations": {"x": "y"}}}}},
        {"spec": {"template": {"metadata": {"$patch": "replace", "labels": {"b": "2"}}}}},
        {"spec": {"template": {"metadata": {"labels": {"b": "2"}}}}},
    ),
    (
        "patch-delete-on-map",
        {"spec": {"selector": {"matchLabels": {"a": "1"}}, "replicas": 1}},
        {"spec": {"selector": {"$patch": "delete"}}},
        {"spec": {"selector": {}, "replicas": 1}},
    ),
    (
        "patch-delete-of-absent-field-leaves-it-absent",
        {"spec": {"replicas": 1}},
        {"spec": {"template": {"$patch": "delete"}}},
        {"spec": {"replicas": 1}},
    ),
    (
        "finalizers-union",
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"finalizers": ["d", "a"]}},
        {"metadata": {"finalizers": ["d", "a", "b", "c"]}},
    ),
    (
        "finalizers-delete-from-primitive-list",
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"finalizers": ["a", "c"]}},
    ),
    (
        "finalizers-set-element-order",
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}},
        {"metadata": {"finalizers": ["c", "a", "b"]}},
    ),
    (
        "retain-keys-on-volume",
        {
            "spec": {
                "template": {
                    "spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}
                }
            }
        },
        {
            "spec": {
                "template": {
                    "spec": {
                        "volumes": [
                            {"name": "v", "configMap": {"name": "cm"}, "$retainKeys": ["configMap", "name"]}
                        ]
                    }
                }
            }
        },
        {
            "spec": {
                "template": {
                    "spec": {
                        "volumes": [{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "emptyDir": {}}]
                    }
                }
            }
        },
    ),
    (
        "directives-inside-added-values-are-applied",
        {"spec": {"replicas": 1}},
        pod_patch(
            containers=[{"name": "a", "image": "x"}, {"name": "b", "$patch": "delete"}],
            **{"$setElementOrder/containers": [{"name": "a"}]},
        ),
        {"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}},
    ),
    (
        "unknown-paths-merge-like-merge-patch",
        {"spec": {"bogus": {"x": 1, "list": [1, 2]}}},
        {"spec": {"bogus": {"y": 2, "list": [3], "x": None}}},
        {"spec": {"bogus": {"y": 2, "list": [3]}}},
    ),
    (
        "tolerations-have-no-strategy-and-are-replaced",
        {"spec": {"template": {"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}}}},
        {"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}},
        {"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}},
    ),
    (
        "top-level-replace",
        {"spec": {"replicas": 1}, "metadata": {"name": "x"}},
        {"$patch": "replace", "spec": {"replicas": 2}},
        {"spec": {"replicas": 2}},
    ),
]


@pytest.mark.parametrize(
    ("target", "patch", "expected"), [c[1:] for c in MAP_CASES], ids=[c[0] for c in MAP_CASES]
)
def test_strategic_merge_patch_examples(
    schemas: SchemaSet, target: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    result = strategic_merge_patch(target, patch, schemas, RS)
    assert result == expected
    assert not has_directive(result)
    assert target == before_target
    assert patch == before_patch


def test_kubectl_apply_of_a_replicaset(schemas: SchemaSet) -> None:
    """The three-way patch ``kubectl apply`` sends after a manifest changed replicas 2 -> 5, the
    web image 1.25 -> 1.27, and dropped the ``tier`` label (captured shape of kubectl 1.32)."""
    last_applied = {"metadata": {"labels": {"app": "web", "tier": "front"}}}
    live = replicaset(WEB, SIDECAR)
    live["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(last_applied),
        "deployment.kubernetes.io/revision": "3",  # set by someone else: kept
    }
    live["metadata"]["resourceVersion"] = "41"
    live["status"] = {"replicas": 2, "readyReplicas": 2}
    new_applied = json.dumps({"metadata": {"labels": {"app": "web"}}})
    patch = {
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": new_applied},
            "labels": {"tier": None},
        },
        "spec": {
            "replicas": 5,
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                    "containers": [{"image": "nginx:1.27", "name": "web"}],
                }
            },
        },
    }
    result = strategic_merge_patch(live, patch, schemas, RS)
    assert result["spec"]["replicas"] == 5
    assert [c["name"] for c in containers_of(result)] == ["web", "sidecar"]
    assert containers_of(result)[0] == {**WEB, "image": "nginx:1.27"}
    assert containers_of(result)[1] == SIDECAR
    assert result["metadata"]["labels"] == {"app": "web"}
    assert result["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/last-applied-configuration": new_applied,
        "deployment.kubernetes.io/revision": "3",
    }
    assert result["metadata"]["resourceVersion"] == "41"
    assert result["status"] == {"replicas": 2, "readyReplicas": 2}
    assert result["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert not has_directive(result)


def test_scale_subresource_patch(schemas: SchemaSet) -> None:
    scale = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "spec": {"replicas": 2},
        "status": {"replicas": 2},
    }
    result = strategic_merge_patch(
        scale, {"spec": {"replicas": 7}}, schemas, "io.k8s.api.autoscaling.v1.Scale"
    )
    assert result == {**scale, "spec": {"replicas": 7}}


SMP_ERRORS: list[tuple[str, dict[str, Any], dict[str, Any], int]] = [
    ("unknown-patch-directive", {"spec": {}}, {"spec": {"$patch": "explode"}}, 400),
    (
        "retain-keys-must-list-patched-keys",
        {"spec": {"template": {"spec": {"volumes": [{"name": "v"}]}}}},
        pod_patch(volumes=[{"name": "v", "configMap": {"name": "c"}, "$retainKeys": ["name"]}]),
        400,
    ),
    ("missing-merge-key", replicaset(WEB), pod_patch(containers=[{"image": "x"}]), 400),
    (
        "merge-directive-in-list",
        replicaset(WEB),
        pod_patch(containers=[{"name": "web"}, {"$patch": "merge"}]),
        400,
    ),
    (
        "set-element-order-not-a-list",
        replicaset(WEB),
        pod_patch(**{"$setElementOrder/containers": {"name": "web"}}),
        400,
    ),
    (
        "set-element-order-disagrees-with-patch",
        replicaset(WEB, SIDECAR),
        pod_patch(
            **{
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{"name": "sidecar", "image": "a"}, {"name": "web", "image": "b"}],
            }
        ),
        400,
    ),
    ("list-of-lists", {"metadata": {"finalizers": ["a"]}}, {"metadata": {"finalizers": [["b"]]}}, 422),
    (
        "delete-from-primitive-list-needs-list",
        {"metadata": {}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
        400,
    ),
]


@pytest.mark.parametrize(
    ("target", "patch", "code"), [c[1:] for c in SMP_ERRORS], ids=[c[0] for c in SMP_ERRORS]
)
def test_strategic_merge_patch_errors(
    schemas: SchemaSet, target: dict[str, Any], patch: dict[str, Any], code: int
) -> None:
    with pytest.raises(ApiError) as err:
        strategic_merge_patch(target, patch, schemas, RS)
    assert err.value.code == code


def test_strategic_merge_patch_needs_an_object(schemas: SchemaSet) -> None:
    with pytest.raises(ApiError) as err:
        strategic_merge_patch({}, [1], schemas, RS)  # type: ignore[arg-type]
    assert err.value.code == 400


# ------------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386, appendix A) and JSON patch (RFC 6902)

MERGE_CASES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(
    ("target", "patch", "expected"), MERGE_CASES, ids=[f"rfc7386-{i}" for i in range(len(MERGE_CASES))]
)
def test_merge_patch_rfc_examples(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == expected
    assert target == before


def test_merge_patch_result_shares_nothing_with_inputs() -> None:
    target = {"metadata": {"labels": {"a": "1"}}, "spec": {"x": [1]}}
    patch = {"spec": {"y": {"z": [2]}}}
    result = merge_patch(target, patch)
    result["metadata"]["labels"]["b"] = "2"
    result["spec"]["y"]["z"].append(3)
    assert target == {"metadata": {"labels": {"a": "1"}}, "spec": {"x": [1]}}
    assert patch == {"spec": {"y": {"z": [2]}}}


JSON_PATCH_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    (
        "replace",
        [{"op": "replace", "path": "/spec/replicas", "value": 3}],
        {"spec": {"replicas": 3, "l": [1, 2]}},
    ),
    (
        "add-to-list-end",
        [{"op": "add", "path": "/spec/l/-", "value": 3}],
        {"spec": {"replicas": 1, "l": [1, 2, 3]}},
    ),
    ("remove", [{"op": "remove", "path": "/spec/l/0"}], {"spec": {"replicas": 1, "l": [2]}}),
    (
        "test-then-replace",
        [
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 9},
        ],
        {"spec": {"replicas": 9, "l": [1, 2]}},
    ),
    (
        "escaped-pointer",
        [{"op": "add", "path": "/spec/a~1b", "value": 1}],
        {"spec": {"replicas": 1, "l": [1, 2], "a/b": 1}},
    ),
]


@pytest.mark.parametrize(
    ("ops", "expected"), [c[1:] for c in JSON_PATCH_CASES], ids=[c[0] for c in JSON_PATCH_CASES]
)
def test_json_patch(ops: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    target = {"spec": {"replicas": 1, "l": [1, 2]}}
    assert json_patch(target, ops) == expected
    assert target == {"spec": {"replicas": 1, "l": [1, 2]}}


JSON_PATCH_ERRORS: list[tuple[str, Any, int]] = [
    ("not-a-list", {"op": "add"}, 400),
    ("unknown-op", [{"op": "frobnicate", "path": "/a"}], 400),
    ("no-path", [{"op": "add", "value": 1}], 400),
    ("test-fails", [{"op": "test", "path": "/spec/replicas", "value": 2}], 422),
    ("missing-path", [{"op": "replace", "path": "/spec/missing", "value": 2}], 422),
    ("missing-parent", [{"op": "add", "path": "/nope/x", "value": 2}], 422),
    ("index-out-of-range", [{"op": "remove", "path": "/spec/l/9"}], 422),
    ("root-becomes-scalar", [{"op": "replace", "path": "", "value": 5}], 422),
    ("too-many-operations", [{"op": "test", "path": "/spec", "value": {}}] * 10001, 413),
]


@pytest.mark.parametrize(
    ("ops", "code"), [c[1:] for c in JSON_PATCH_ERRORS], ids=[c[0] for c in JSON_PATCH_ERRORS]
)
def test_json_patch_errors(ops: Any, code: int) -> None:
    with pytest.raises(ApiError) as err:
        json_patch({"spec": {"replicas": 1, "l": [1, 2]}}, ops)
    assert err.value.code == code
    if code == 422:
        assert err.value.reason == "Invalid"
        assert err.value.message.startswith("the server rejected our request due to an error in our request")


# ------------------------------------------------------------------------------------------------
# Properties

_keys = st.text(st.characters(codec="ascii", exclude_characters="$"), min_size=1, max_size=4)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=12,
)
_objects = st.dictionaries(_keys, _json, max_size=5)


@settings(max_examples=200, deadline=None)
@given(_objects)
def test_merge_patch_with_empty_patch_is_identity(target: dict[str, Any]) -> None:
    assert merge_patch(target, {}) == target


@settings(max_examples=200, deadline=None)
@given(_objects, _json)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: Any) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


@pytest.fixture(scope="module")
def free_schemas() -> SchemaSet:
    return SchemaSet({FREE: {"type": "object", "x-kubernetes-preserve-unknown-fields": True}})


@settings(max_examples=200, deadline=None)
@given(_objects, _objects)
def test_strategic_patch_without_schema_is_merge_patch(
    free_schemas: SchemaSet, target: dict[str, Any], patch: dict[str, Any]
) -> None:
    before = copy.deepcopy(patch)
    assert strategic_merge_patch(target, patch, free_schemas, FREE) == merge_patch(target, patch)
    assert patch == before


@settings(max_examples=100, deadline=None)
@given(_objects, _objects)
def test_strategic_patch_of_unknown_fields_of_a_kind_is_merge_patch(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    """Under a field the ReplicaSet schema does not know, SMP is merge patch."""
    result = strategic_merge_patch(
        {"spec": {"unknown": target}}, {"spec": {"unknown": patch}}, official_schemas(), RS
    )
    assert result == {"spec": {"unknown": merge_patch(target, patch)}}
