"""Decoding against the official schemas, JSON bodies, patch metadata and the OpenAPI v3 documents."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from federation.apimachinery.errors import ApiError
from federation.apimachinery.jsonbody import parse_json_body
from federation.apimachinery.openapi import openapi_v3_document, openapi_v3_hash, openapi_v3_index
from federation.apimachinery.resources import ResourceType, Scheme
from federation.apimachinery.schema import FieldValidation, SchemaSet, official_schemas
from federation.apimachinery.schematree import PatchMeta

RS = "io.k8s.api.apps.v1.ReplicaSet"
SECRET = "io.k8s.api.core.v1.Secret"
WIDGET = "io.example.v1.Widget"

EXTRA: dict[str, dict[str, Any]] = {
    WIDGET: {
        "type": "object",
        "properties": {
            "metadata": {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {"$ref": "#/$defs/io.example.v1.WidgetSpec"},
        },
        "x-kubernetes-group-version-kind": [{"group": "example.io", "kind": "Widget", "version": "v1"}],
    },
    "io.example.v1.WidgetSpec": {
        "type": "object",
        "properties": {
            "size": {"type": "integer", "format": "int32"},
            "port": {"x-kubernetes-int-or-string": True},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                "x-kubernetes-patch-merge-key": "name",
                "x-kubernetes-patch-strategy": "merge",
            },
        },
    },
}


@pytest.fixture(scope="module")
def schemas() -> SchemaSet:
    return SchemaSet(EXTRA)


def replicaset() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
        "spec": {
            "replicas": 3,
            "minReadySeconds": None,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx",
                            "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": "500m", "memory": 134217728}},
                            "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                            "livenessProbe": {"httpGet": {"port": 8080}},
                            "env": [{"name": "A", "value": "1"}],
                        }
                    ]
                },
            },
        },
    }


# ------------------------------------------------------------------------------------------------
# definitions


def test_definition_and_resolve(schemas: SchemaSet) -> None:
    rs = schemas.definition(RS)
    assert rs["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "ReplicaSet", "version": "v1"}]
    assert schemas.definition("#/$defs/" + RS) is rs
    spec = schemas.resolve(rs["properties"]["spec"])
    assert "replicas" in spec["properties"]
    assert spec["description"] == rs["properties"]["spec"]["description"]  # siblings win
    assert schemas.definition(WIDGET)["properties"]["spec"]["$ref"] == "#/$defs/io.example.v1.WidgetSpec"
    with pytest.raises(KeyError):
        schemas.definition("io.k8s.api.nope.v1.Nothing")


PATCH_META_CASES = [
    (RS, ("spec", "template", "spec", "containers"), PatchMeta(frozenset({"merge"}), "name")),
    (RS, ("spec", "template", "spec", "containers", "env"), PatchMeta(frozenset({"merge"}), "name")),
    (
        RS,
        ("spec", "template", "spec", "containers", "ports"),
        PatchMeta(frozenset({"merge"}), "containerPort"),
    ),
    (RS, ("spec", "template", "spec", "volumes"), PatchMeta(frozenset({"merge", "retainKeys"}), "name")),
    (RS, ("spec", "template", "spec", "tolerations"), PatchMeta()),
    (RS, ("metadata", "finalizers"), PatchMeta(frozenset({"merge"}), None)),
    (RS, ("spec", "nothing", "here"), PatchMeta()),
    (WIDGET, ("spec", "items"), PatchMeta(frozenset({"merge"}), "name")),
]


@pytest.mark.parametrize(
    ("ref", "path", "expected"), PATCH_META_CASES, ids=[".".join(c[1]) for c in PATCH_META_CASES]
)
def test_patch_meta(schemas: SchemaSet, ref: str, path: tuple[str, ...], expected: PatchMeta) -> None:
    assert schemas.patch_meta(ref, path) == expected


# ------------------------------------------------------------------------------------------------
# decode


def test_valid_replicaset_decodes_and_is_normalised(schemas: SchemaSet) -> None:
    obj = replicaset()
    obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 80.0
    assert schemas.decode(obj, RS, field_validation="Strict") == []
    assert "minReadySeconds" not in obj["spec"]  # null dropped, as the Go round trip does
    port = obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert port == 80
    assert type(port) is int
    expected = replicaset()
    del expected["spec"]["minReadySeconds"]
    assert obj == expected


UNKNOWN_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("spec", {"spec": {"bogus": 1}}, ["spec.bogus"]),
    ("metadata", {"metadata": {"name": "x", "nmae": "y"}}, ["metadata.nmae"]),
    ("top-level", {"bogus": {}, "spec": {}}, ["bogus"]),
    (
        "nested-list",
        {"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "imagee": "x"}]}}}},
        ["spec.template.spec.containers[1].imagee"],
    ),
    ("several", {"spec": {"a": 1, "template": {"b": 2}}, "c": 3}, ["spec.a", "spec.template.b", "c"]),
]


@pytest.mark.parametrize(("body", "paths"), [c[1:] for c in UNKNOWN_CASES], ids=[c[0] for c in UNKNOWN_CASES])
def test_unknown_fields_per_field_validation(
    schemas: SchemaSet, body: dict[str, Any], paths: list[str]
) -> None:
    with pytest.raises(ApiError) as err:
        schemas.decode(copy.deepcopy(body), RS, field_validation="Strict")
    assert err.value.code == 400
    assert err.value.reason == "BadRequest"
    listed = ", ".join(f'unknown field "{p}"' for p in paths)
    assert (
        err.value.message
        == f'ReplicaSet in version "v1" cannot be handled as a ReplicaSet: strict decoding error: {listed}'
    )

    warned = copy.deepcopy(body)
    assert schemas.decode(warned, RS, field_validation="Warn") == [f'unknown field "{p}"' for p in paths]
    ignored = copy.deepcopy(body)
    assert schemas.decode(ignored, RS, field_validation="Ignore") == []
    assert warned == ignored
    text = json.dumps(ignored)
    for p in paths:
        assert f'"{p.rpartition(".")[2]}"' not in text  # dropped


def test_duplicates_join_the_strict_error(schemas: SchemaSet) -> None:
    with pytest.raises(ApiError) as err:
        schemas.decode({"spec": {"bogus": 1}}, RS, field_validation="Strict", duplicates=["metadata.name"])
    assert err.value.message.endswith(
        'strict decoding error: json: duplicate field "metadata.name", unknown field "spec.bogus"'
    )
    warnings = schemas.decode({"spec": {}}, RS, field_validation="Warn", duplicates=["metadata.name"])
    assert warnings == ['duplicate field "metadata.name"']
    assert schemas.decode({}, RS, field_validation="Strict") == []


TYPE_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "string-for-int32",
        RS,
        {"spec": {"replicas": "3"}},
        "json: cannot unmarshal string into Go struct field ReplicaSetSpec.spec.replicas of type int32",
    ),
    (
        "fraction-for-int32",
        RS,
        {"spec": {"replicas": 1.5}},
        "json: cannot unmarshal number 1.5 into Go struct field ReplicaSetSpec.spec.replicas of type int32",
    ),
    (
        "int32-overflow",
        RS,
        {"spec": {"replicas": 2**31}},
        "json: cannot unmarshal number 2147483648 into Go struct field ReplicaSetSpec.spec.replicas "
        "of type int32",
    ),
    (
        "bool-for-int",
        RS,
        {"spec": {"replicas": True}},
        "json: cannot unmarshal bool into Go struct field ReplicaSetSpec.spec.replicas of type int32",
    ),
    (
        "number-label",
        RS,
        {"metadata": {"labels": {"version": 1.0}}},
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
    ),
    (
        "string-for-struct",
        RS,
        {"spec": "three"},
        "json: cannot unmarshal string into Go struct field ReplicaSet.spec of type v1.ReplicaSetSpec",
    ),
    (
        "object-for-list",
        RS,
        {"spec": {"template": {"spec": {"containers": {"name": "a"}}}}},
        "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers "
        "of type []v1.Container",
    ),
    (
        "nested-in-list",
        RS,
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}}}},
        "json: cannot unmarshal string into Go struct field ContainerPort.spec.template.spec.containers.ports"
        ".containerPort of type int32",
    ),
    (
        "list-for-map",
        RS,
        {"metadata": {"labels": ["a"]}},
        "json: cannot unmarshal array into Go struct field ObjectMeta.metadata.labels "
        "of type map[string]string",
    ),
    (
        "bool-for-quantity",
        RS,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": True}}}]}}
            }
        },
        "json: cannot unmarshal bool into Go struct field ResourceRequirements.spec.template.spec.containers"
        ".resources.limits of type resource.Quantity",
    ),
    (
        "float-for-int-or-string",
        WIDGET,
        {"spec": {"port": 1.5}},
        "json: cannot unmarshal number 1.5 into Go struct field WidgetSpec.spec.port "
        "of type intstr.IntOrString",
    ),
    ("bad-base64", SECRET, {"data": {"key": "not base64!"}}, "illegal base64 data at input byte 3"),
    (
        "bad-time",
        SECRET,
        {"metadata": {"creationTimestamp": "yesterday"}},
        'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"',
    ),
]


@pytest.mark.parametrize(
    ("ref", "body", "message"), [c[1:] for c in TYPE_CASES], ids=[c[0] for c in TYPE_CASES]
)
@pytest.mark.parametrize("validation", ["Strict", "Ignore"])
def test_type_mismatches_are_bad_requests(
    schemas: SchemaSet, ref: str, body: dict[str, Any], message: str, validation: FieldValidation
) -> None:
    with pytest.raises(ApiError) as err:
        schemas.decode(copy.deepcopy(body), ref, field_validation=validation)
    assert err.value.code == 400
    kind = ref.rpartition(".")[2]
    version = "v1"
    assert err.value.message == f'{kind} in version "{version}" cannot be handled as a {kind}: {message}'


ACCEPTED_CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "quantity-number",
        RS,
        {"spec": {"template": {"spec": {"containers": [{"resources": {"requests": {"cpu": 1}}}]}}}},
    ),
    ("int-or-string-int", WIDGET, {"spec": {"port": 80}}),
    ("int-or-string-string", WIDGET, {"spec": {"port": "http"}}),
    ("preserve-unknown", WIDGET, {"spec": {"extra": {"anything": [1, {"goes": True}]}}}),
    (
        "free-form-fieldsv1",
        RS,
        {"metadata": {"managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]}},
    ),
    (
        "secret-data",
        SECRET,
        {"data": {"a": "aGVsbG8=", "b": "aGVs\nbG8="}, "stringData": {"c": "plain"}, "type": "Opaque"},
    ),
    (
        "time-and-microtime",
        "io.k8s.api.core.v1.Event",
        {"eventTime": "2024-05-01T10:00:00.123456Z", "count": 2},
    ),
    ("api-version-and-kind", WIDGET, {"apiVersion": "example.io/v1", "kind": "Widget"}),
    ("nulls-anywhere", RS, {"metadata": None, "spec": {"template": {"spec": {"containers": [None]}}}}),
]


@pytest.mark.parametrize(("ref", "body"), [c[1:] for c in ACCEPTED_CASES], ids=[c[0] for c in ACCEPTED_CASES])
def test_accepted_bodies(schemas: SchemaSet, ref: str, body: dict[str, Any]) -> None:
    obj = copy.deepcopy(body)
    assert schemas.decode(obj, ref, field_validation="Strict") == []
    assert "metadata" not in obj or obj["metadata"] is not None


def test_decode_of_non_object_is_bad_request(schemas: SchemaSet) -> None:
    with pytest.raises(ApiError) as err:
        schemas.decode([1], RS, field_validation="Strict")  # type: ignore[arg-type]
    assert err.value.code == 400
    assert "cannot unmarshal array into Go value of type v1.ReplicaSet" in err.value.message


# ------------------------------------------------------------------------------------------------
# parse_json_body

DUPLICATE_CASES: list[tuple[str, bytes, Any, list[str]]] = [
    ("none", b'{"a": 1}', {"a": 1}, []),
    ("top", b'{"a": 1, "a": 2}', {"a": 2}, ["a"]),
    ("nested", b'{"metadata": {"name": "a", "name": "b"}}', {"metadata": {"name": "b"}}, ["metadata.name"]),
    (
        "in-list",
        b'{"spec": {"containers": [{"name": "a"}, {"image": "x", "image": "y"}]}}',
        {"spec": {"containers": [{"name": "a"}, {"image": "y"}]}},
        ["spec.containers[1].image"],
    ),
    ("overwritten-object", b'{"a": {"b": 1, "b": 2}, "a": 3}', {"a": 3}, ["a", "b"]),
    ("thrice", b'{"a": 1, "a": 2, "a": 3}', {"a": 3}, ["a"]),
]


@pytest.mark.parametrize(
    ("raw", "value", "dups"), [c[1:] for c in DUPLICATE_CASES], ids=[c[0] for c in DUPLICATE_CASES]
)
def test_parse_json_body_reports_duplicates(raw: bytes, value: Any, dups: list[str]) -> None:
    parsed, duplicates = parse_json_body(raw)
    assert parsed == value
    assert sorted(duplicates) == sorted(dups)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": ', "json parse error"),
        (b"{'a': 1}", "json parse error"),
        (b'{"a": NaN}', "json parse error"),
        (b'{"a": 1e999}', "out of range"),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
    ids=["truncated", "single-quotes", "nan", "overflow", "not-utf8"],
)
def test_parse_json_body_rejects_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_json_body(raw)
    assert err.value.code == 400
    assert message in err.value.message


# ------------------------------------------------------------------------------------------------
# OpenAPI v3

WIDGETS = ResourceType(
    "example.io", "v1", "Widget", "widgets", "widget", False, WIDGET, subresources=frozenset({"status"})
)
RSETS = ResourceType(
    "apps",
    "v1",
    "ReplicaSet",
    "replicasets",
    "replicaset",
    True,
    RS,
    subresources=frozenset({"status", "scale"}),
)
SECRETS = ResourceType("", "v1", "Secret", "secrets", "secret", True, SECRET)
CRDS = ResourceType(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    "customresourcedefinition",
    False,
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
)


@pytest.fixture(scope="module")
def scheme() -> Scheme:
    return Scheme([SECRETS, RSETS, WIDGETS, CRDS])


def _refs(value: Any) -> list[str]:
    """Every string-valued ``$ref`` in a document."""
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_openapi_index_lists_every_group_version(scheme: Scheme, schemas: SchemaSet) -> None:
    index = openapi_v3_index(scheme, schemas=schemas)
    assert list(index["paths"]) == [
        "api/v1",
        "apis/apiextensions.k8s.io/v1",
        "apis/apps/v1",
        "apis/example.io/v1",
    ]
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/apis/apps/v1?hash={openapi_v3_hash(scheme, 'apps', 'v1', schemas=schemas)}"
    assert openapi_v3_index(scheme, schemas=schemas) is index  # cached
    # the hash is a function of the content: a fresh scheme and schema set give the same one
    again = openapi_v3_index(Scheme([SECRETS, RSETS, WIDGETS, CRDS]), schemas=SchemaSet(EXTRA))
    assert again == index


def test_openapi_document_for_replicasets(scheme: Scheme, schemas: SchemaSet) -> None:
    doc = openapi_v3_document(scheme, "apps", "v1", schemas=schemas)
    assert doc["openapi"].startswith("3.0")
    base = "/apis/apps/v1/namespaces/{namespace}/replicasets"
    assert set(doc["paths"]) == {
        base,
        base + "/{name}",
        base + "/{name}/status",
        base + "/{name}/scale",
        "/apis/apps/v1/replicasets",
    }
    gvk = {"group": "apps", "kind": "ReplicaSet", "version": "v1"}
    assert set(doc["paths"][base]) >= {"get", "post", "delete"}
    assert set(doc["paths"][base + "/{name}"]) >= {"get", "put", "patch", "delete"}
    for path, verb in [
        (base, "post"),
        (base + "/{name}", "put"),
        (base + "/{name}", "patch"),
        (base + "/{name}/status", "patch"),
    ]:
        op = doc["paths"][path][verb]
        assert op["x-kubernetes-group-version-kind"] == gvk
        assert "fieldValidation" in [p["name"] for p in op["parameters"]]
    scale = doc["paths"][base + "/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }

    components = doc["components"]["schemas"]
    for name in [
        RS,
        "io.k8s.api.apps.v1.ReplicaSetList",
        "io.k8s.api.autoscaling.v1.Scale",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
        "io.k8s.api.core.v1.Container",
    ]:
        assert name in components
    assert gvk in components[RS]["x-kubernetes-group-version-kind"]
    # strategic merge patch metadata survives for kubectl apply
    pod_spec = components["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert pod_spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod_spec["containers"]["x-kubernetes-patch-strategy"] == "merge"
    # OpenAPI 3.0 shapes: one type plus nullable, refs into components, allOf beside siblings
    replicas = components["io.k8s.api.apps.v1.ReplicaSetSpec"]["properties"]["replicas"]
    assert replicas["type"] == "integer"
    assert replicas["nullable"] is True
    assert components[RS]["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.ReplicaSetSpec"}
    ]
    assert components["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    text = json.dumps(doc)
    assert "#/$defs/" not in text
    assert not any(isinstance(s.get("type"), list) for s in _schemas_in(components))
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in components
    assert openapi_v3_document(scheme, "apps", "v1", schemas=schemas) is doc


def _schemas_in(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value] + [s for v in value.values() for s in _schemas_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _schemas_in(v)]
    return []


def test_openapi_keeps_a_property_named_ref(scheme: Scheme, schemas: SchemaSet) -> None:
    doc = openapi_v3_document(scheme, "apiextensions.k8s.io", "v1", schemas=schemas)
    props = doc["components"]["schemas"][
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"
    ]
    assert props["properties"]["$ref"]["type"] == "string"
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"]


def test_openapi_for_extra_kinds(scheme: Scheme, schemas: SchemaSet) -> None:
    doc = openapi_v3_document(scheme, "example.io", "v1", schemas=schemas)
    assert set(doc["paths"]) == {
        "/apis/example.io/v1/widgets",
        "/apis/example.io/v1/widgets/{name}",
        "/apis/example.io/v1/widgets/{name}/status",
    }
    components = doc["components"]["schemas"]
    assert (
        components["io.example.v1.WidgetSpec"]["properties"]["items"]["x-kubernetes-patch-merge-key"]
        == "name"
    )
    listing = components["io.example.v1.WidgetList"]  # synthesised: the extra set has none
    assert listing["properties"]["items"]["items"] == {"$ref": "#/components/schemas/io.example.v1.Widget"}
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in components

    # Without the extra definitions the kind is still published, free-form, so kubectl works.
    bare = openapi_v3_document(Scheme([WIDGETS]), "example.io", "v1")
    widget = bare["components"]["schemas"][WIDGET]
    assert widget["x-kubernetes-preserve-unknown-fields"] is True
    assert widget["x-kubernetes-group-version-kind"] == [
        {"group": "example.io", "kind": "Widget", "version": "v1"}
    ]


def test_official_schemas_is_one_per_process() -> None:
    assert official_schemas() is official_schemas()
    assert official_schemas().node(RS) is official_schemas().node("#/$defs/" + RS)
