"""Reading Kubernetes protobuf request bodies as the JSON a JSON client would have sent.

The golden bodies are bytes captured from kubectl 1.32 (1.36 sends the same bytes); the JSON they must
equal is what kubectl 1.27, which sends JSON, sent for the same commands. The other bodies are built
with the small encoder below, which writes as Go does: every non-pointer field, zero or not.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.apimachinery.errors import ApiError
from federation.apimachinery.protobuf import ZERO_TIME, decode

# ---------------------------------------------------------------------------- a tiny encoder


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def num(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def ld(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def text(number: int, value: str) -> bytes:
    return ld(number, value.encode())


def entry(number: int, k: str, v: bytes) -> bytes:
    return ld(number, text(1, k) + ld(2, v))


def time_(number: int, seconds: int | None, nanos: int = 0) -> bytes:
    """A metav1.Time as Go writes it: an empty message when zero."""
    return ld(number, b"" if seconds is None else num(1, seconds) + num(2, nanos))


def envelope(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    type_meta = text(1, api_version) + text(2, kind)
    return b"k8s\x00" + ld(1, type_meta) + ld(2, raw) + text(3, encoding) + text(4, "")


def meta(name: str = "x", namespace: str = "", extra: bytes = b"") -> bytes:
    """An ObjectMeta as kubectl writes it: empty strings and a zero time included."""
    fields = text(1, name) + text(2, "") + text(3, namespace) + text(4, "") + text(5, "") + text(6, "")
    return fields + num(7, 0) + time_(8, None) + extra


# Unknown fields of every wire type, a nested group included.
UNKNOWN = {
    "varint": num(900, 150),
    "fixed64": key(901, 1) + b"\x01" * 8,
    "bytes": ld(902, b"\x00\xff anything"),
    "fixed32": key(903, 5) + b"\x02" * 4,
    "group": key(904, 3) + num(1, 7) + key(5, 3) + ld(2, b"x") + key(5, 4) + key(904, 4),
}
ALL_UNKNOWN = b"".join(UNKNOWN.values())

# ---------------------------------------------------------------------------- kubectl's own bytes

GOLDEN = {
    "create namespace foo": (
        "6b3873000a0f0a02763112094e616d657370616365121b0a130a03666f6f12001a0022002a00320038004200"
        "12001a020a001a002200",
        {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {"name": "foo", "creationTimestamp": None},
            "spec": {},
            "status": {},
        },
    ),
    "create secret generic --from-literal": (
        "6b3873000a0c0a0276311206536563726574122b0a140a017312001a036e733122002a003200380042001206"
        "0a016112016212090a05656d70747912001a001a002200",
        {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "s", "namespace": "ns1", "creationTimestamp": None},
            "data": {"a": "Yg==", "empty": ""},
        },
    ),
    "create service clusterip": (
        "6b3873000a0d0a027631120753657276696365128a010a1d0a02733112001a0022002a003200380042005a09"
        "0a036170701202733112650a1b0a0738302d38303830120354435018502207080010903f1a0028000a220a09"
        "3434332d6874747073120354435018bb03220b080110001a056874747073280012090a03617070120273311a"
        "002209436c757374657249503a00420052005a00600068001a020a001a002200",
        {
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": "s1", "creationTimestamp": None, "labels": {"app": "s1"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                ],
                "selector": {"app": "s1"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        },
    ),
    "create service externalname": (
        "6b3873000a0d0a02763112075365727669636512570a1d0a02656e12001a0022002a003200380042005a090a"
        "036170701202656e123212090a036170701202656e1a00220c45787465726e616c4e616d653a004200520b65"
        "78616d706c652e636f6d5a00600068001a020a001a002200",
        {
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": "en", "creationTimestamp": None, "labels": {"app": "en"}},
            "spec": {"selector": {"app": "en"}, "type": "ExternalName", "externalName": "example.com"},
            "status": {"loadBalancer": {}},
        },
    ),
}


@pytest.mark.parametrize(("body", "want"), list(GOLDEN.values()), ids=list(GOLDEN))
def test_kubectl_bodies_read_as_the_json_kubectl_127_sends(body: str, want: dict[str, Any]) -> None:
    assert decode(bytes.fromhex(body)) == want


# ---------------------------------------------------------------------------- hand-built bodies

OWNER = text(5, "apps/v1") + text(1, "ReplicaSet") + text(3, "web") + text(4, "u-1") + num(6, 0)
FULL_META = (
    text(1, "web")
    + text(2, "web-")
    + text(3, "shop")
    + text(4, "")
    + text(5, "0b7c")
    + text(6, "42")
    + num(7, 3)
    + time_(8, 1_700_000_000, 999)
    + time_(9, 1_700_000_030)
    + num(10, 30)
    + entry(11, "app", b"web")
    + entry(11, "tier", b"")
    + entry(12, "note", b"hello")
    + ld(13, OWNER)
    + text(14, "example.com/keep")
    + text(14, "kubernetes")
    + ld(17, text(1, "kubectl") + text(2, "Update"))  # managedFields: not read
)
FULL_META_JSON = {
    "name": "web",
    "generateName": "web-",
    "namespace": "shop",
    "uid": "0b7c",
    "resourceVersion": "42",
    "generation": 3,
    "creationTimestamp": "2023-11-14T22:13:20Z",
    "deletionTimestamp": "2023-11-14T22:13:50Z",
    "deletionGracePeriodSeconds": 30,
    "labels": {"app": "web", "tier": ""},
    "annotations": {"note": "hello"},
    "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u-1", "controller": False}
    ],
    "finalizers": ["example.com/keep", "kubernetes"],
}
CONDITION = (
    text(1, "NamespaceDeletionContentFailure") + text(2, "False") + time_(4, 0) + text(5, "") + text(6, "")
)

CASES: dict[str, tuple[bytes, dict[str, Any]]] = {
    "namespace with every ObjectMeta field": (
        envelope(
            "v1",
            "Namespace",
            ld(1, FULL_META)
            + ld(2, text(1, "kubernetes"))
            + ld(3, text(1, "Terminating") + ld(2, CONDITION)),
        ),
        {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": FULL_META_JSON,
            "spec": {"finalizers": ["kubernetes"]},
            "status": {
                "phase": "Terminating",
                "conditions": [
                    {
                        "type": "NamespaceDeletionContentFailure",
                        "status": "False",
                        "lastTransitionTime": "1970-01-01T00:00:00Z",
                    }
                ],
            },
        },
    ),
    "secret with stringData, type and immutable false": (
        envelope(
            "v1",
            "Secret",
            ld(1, meta("db", "shop"))
            + num(5, 0)
            + entry(2, "bin", b"\x00\xff\x10")
            + entry(4, "password", b"hunter2")
            + text(3, "Opaque"),
        ),
        {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "db", "namespace": "shop", "creationTimestamp": None},
            "immutable": False,
            "data": {"bin": "AP8Q"},
            "stringData": {"password": "hunter2"},
            "type": "Opaque",
        },
    ),
    "service with pointer fields and a load balancer status": (
        envelope(
            "v1",
            "Service",
            ld(1, meta("lb", "shop"))
            + ld(
                2,
                ld(
                    1,
                    text(1, "")
                    + text(2, "UDP")
                    + num(3, 0)
                    + ld(4, num(1, 0) + num(2, 0) + text(3, ""))
                    + num(5, 0),
                )
                + text(4, "LoadBalancer")
                + text(18, "10.0.0.9")
                + text(7, "ClientIP")
                + ld(14, ld(1, num(1, 10800)))
                + text(17, "SingleStack")
                + num(20, 0)
                + text(21, "")
                + text(23, "PreferClose")
                + num(12, 0),
            )
            + ld(
                3,
                ld(1, ld(1, text(1, "127.0.0.1") + text(3, "VIP") + ld(4, num(1, 41234) + text(2, "TCP"))))
                + ld(
                    2,
                    text(1, "Ready")
                    + text(2, "True")
                    + num(3, 2)
                    + time_(4, 86400)
                    + text(5, "Ok")
                    + text(6, ""),
                ),
            ),
        ),
        {
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": "lb", "namespace": "shop", "creationTimestamp": None},
            "spec": {
                "ports": [{"protocol": "UDP", "port": 0, "targetPort": 0}],
                "type": "LoadBalancer",
                "clusterIPs": ["10.0.0.9"],
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "ipFamilyPolicy": "SingleStack",
                "allocateLoadBalancerNodePorts": False,
                "loadBalancerClass": "",
                "trafficDistribution": "PreferClose",
            },
            "status": {
                "loadBalancer": {
                    "ingress": [
                        {"ip": "127.0.0.1", "ipMode": "VIP", "ports": [{"port": 41234, "protocol": "TCP"}]}
                    ]
                },
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "observedGeneration": 2,
                        "lastTransitionTime": "1970-01-02T00:00:00Z",
                        "reason": "Ok",
                        "message": "",
                    }
                ],
            },
        },
    ),
    "negative numbers (ten-byte varints)": (
        envelope("v1", "Namespace", ld(1, meta("n", extra=num(10, -1) + num(7, -5)))),
        {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": "n",
                "creationTimestamp": None,
                "deletionGracePeriodSeconds": -1,
                "generation": -5,
            },
        },
    ),
    "the last value of a field wins, a zero last value is dropped": (
        envelope(
            "v1", "Secret", ld(1, meta("s")) + text(3, "Opaque") + text(3, "") + text(3, "kubernetes.io/tls")
        ),
        {
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "s", "creationTimestamp": None},
            "type": "kubernetes.io/tls",
        },
    ),
    "unknown fields of every wire type, everywhere": (
        b"k8s\x00"
        + ALL_UNKNOWN
        + ld(1, ALL_UNKNOWN + text(1, "v1") + ALL_UNKNOWN + text(2, "Secret"))
        + ld(
            2,
            ALL_UNKNOWN + ld(1, ALL_UNKNOWN + text(1, "s") + ALL_UNKNOWN) + ALL_UNKNOWN + entry(2, "k", b"v"),
        )
        + ALL_UNKNOWN,
        {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "data": {"k": "dg=="}},
    ),
}


@pytest.mark.parametrize(("body", "want"), list(CASES.values()), ids=list(CASES))
def test_decode(body: bytes, want: dict[str, Any]) -> None:
    assert decode(body) == want


@pytest.mark.parametrize("wire", list(UNKNOWN), ids=list(UNKNOWN))
def test_each_unknown_wire_type_is_skipped(wire: str) -> None:
    body = envelope("v1", "Namespace", UNKNOWN[wire] + ld(1, UNKNOWN[wire] + text(1, "a")) + UNKNOWN[wire])
    assert decode(body) == {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "a"}}


# ---------------------------------------------------------------------------- refusals

SECRET_V1 = ("v1", "Secret")
REFUSED: dict[str, tuple[bytes, str]] = {
    "JSON sent as protobuf": (b'{"kind":"Secret"}', "does not start with the Kubernetes protobuf prefix"),
    "another kind": (envelope("v1", "ConfigMap", ld(1, meta())), "v1/ConfigMap is not read from protobuf"),
    "another group": (envelope("apps/v1", "ReplicaSet", ld(1, meta())), "apps/v1/ReplicaSet is not read"),
    "no type meta": (b"k8s\x00" + ld(2, ld(1, meta())), "an object without apiVersion and kind is not read"),
    "compressed": (
        envelope(*SECRET_V1, ld(1, meta()), encoding="gzip"),
        "v1/Secret body has contentEncoding 'gzip'",
    ),
    "truncated envelope": (
        envelope(*SECRET_V1, ld(1, meta()))[:-7],
        "envelope (runtime.Unknown) is malformed",
    ),
    "truncated varint": (
        envelope(*SECRET_V1, ld(1, meta()) + b"\x18\xff"),
        "v1/Secret protobuf body is malformed: truncated varint",
    ),
    "varint of 11 bytes": (
        envelope(*SECRET_V1, b"\x18" + b"\xff" * 10 + b"\x01"),
        "varint longer than 10 bytes",
    ),
    "length past the end": (envelope(*SECRET_V1, b"\x0a\x50abc"), "runs past the end of its message"),
    "field number 0": (envelope(*SECRET_V1, b"\x02\x00"), "field number 0"),
    "wire type 6": (envelope(*SECRET_V1, b"\x0e"), "unexpected wire type 6"),
    "stray end of group": (envelope(*SECRET_V1, key(9, 4)), "unexpected wire type 4"),
    "group not closed": (envelope(*SECRET_V1, key(9, 3) + num(1, 1)), "group 9 is not closed"),
    "group closed by another": (envelope(*SECRET_V1, key(9, 3) + key(8, 4)), "group 9 closed by field 8"),
    "string sent as a varint": (
        envelope(*SECRET_V1, ld(1, num(1, 5))),
        "name has wire type 0, not length-delimited",
    ),
    "bool sent as bytes": (envelope(*SECRET_V1, text(5, "yes")), "immutable has wire type 2, not a varint"),
    "not UTF-8": (envelope(*SECRET_V1, ld(1, ld(1, b"\xff\xfe"))), "a string is not UTF-8"),
    "map key as a varint": (
        envelope(*SECRET_V1, ld(2, num(1, 1))),
        "field 1 has wire type 0, not length-delimited",
    ),
    "time after 9999": (envelope(*SECRET_V1, ld(1, time_(8, 253_402_300_800))), "outside years 1 to 9999"),
    "time before year 1": (envelope(*SECRET_V1, ld(1, time_(8, ZERO_TIME - 1))), "outside years 1 to 9999"),
    "time seconds as bytes": (
        envelope(*SECRET_V1, ld(1, ld(8, text(1, "x")))),
        "field 1 has wire type 2, not a varint",
    ),
}


@pytest.mark.parametrize(("body", "message"), list(REFUSED.values()), ids=list(REFUSED))
def test_refused_with_415_asking_for_json(body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        decode(body)
    err = caught.value
    assert (err.code, err.reason) == (415, "UnsupportedMediaType")
    assert message in err.message
    assert err.message.endswith(
        "send the object as JSON (Content-Type: application/json), e.g. with kubectl apply -f"
    )


def test_empty_body_is_a_bad_request_as_for_json() -> None:
    with pytest.raises(ApiError) as caught:
        decode(b"")
    assert (caught.value.code, caught.value.message) == (400, "the request body is empty")


# ---------------------------------------------------------------------------- metav1.Time

TIMES: dict[str, tuple[bytes, str | None]] = {
    "zero time, as Go writes it": (b"", None),
    "zero time, spelled out": (num(1, ZERO_TIME) + num(2, 0), None),
    "epoch": (num(1, 0) + num(2, 0), "1970-01-01T00:00:00Z"),
    "nanos only: the epoch": (num(2, 5), "1970-01-01T00:00:00Z"),
    "nanoseconds are dropped": (num(1, 1_700_000_000) + num(2, 999_999_999), "2023-11-14T22:13:20Z"),
    "before 1970": (num(1, -1), "1969-12-31T23:59:59Z"),
    "first second after zero": (num(1, ZERO_TIME + 1), "0001-01-01T00:00:01Z"),
    "last second of 9999": (num(1, 253_402_300_799), "9999-12-31T23:59:59Z"),
    "unknown fields": (ALL_UNKNOWN + num(1, 60) + ALL_UNKNOWN, "1970-01-01T00:01:00Z"),
}


@pytest.mark.parametrize(("payload", "want"), list(TIMES.values()), ids=list(TIMES))
def test_time(payload: bytes, want: str | None) -> None:
    body = envelope("v1", "Namespace", ld(1, text(1, "t") + ld(9, payload)))
    assert decode(body)["metadata"] == {"name": "t", "deletionTimestamp": want}


# ---------------------------------------------------------------------------- property: Secrets round-trip

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._/", min_size=1, max_size=20)
words = st.text(min_size=1, max_size=30)  # any Unicode, non-empty: an empty omitempty string is left out
maybe_words = st.text(max_size=30)  # map values and list items: kept even when empty
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
moments = st.datetimes(
    min_value=dt.datetime(1, 1, 1, 0, 0, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)
)


@st.composite
def secrets(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": draw(keys)}
    for name, values in (
        ("generateName", keys),
        ("namespace", keys),
        ("uid", words),
        ("resourceVersion", words),
    ):
        if draw(st.booleans()):
            metadata[name] = draw(values)
    if draw(st.booleans()):
        metadata["generation"] = draw(int64.filter(bool))
    created = draw(st.none() | moments)
    metadata["creationTimestamp"] = (
        None if created is None else created.replace(microsecond=0).isoformat() + "Z"
    )
    if draw(st.booleans()):
        metadata["deletionGracePeriodSeconds"] = draw(int64)  # a pointer: zero is kept
    for name in ("labels", "annotations"):
        if draw(st.booleans()):
            metadata[name] = draw(st.dictionaries(keys, maybe_words, min_size=1, max_size=4))
    if draw(st.booleans()):
        metadata["finalizers"] = draw(st.lists(maybe_words, min_size=1, max_size=3))
    secret: dict[str, Any] = {"kind": "Secret", "apiVersion": "v1", "metadata": metadata}
    if draw(st.booleans()):
        secret["immutable"] = draw(st.booleans())
    if draw(st.booleans()):
        data = draw(st.dictionaries(keys, st.binary(max_size=40), min_size=1, max_size=4))
        secret["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    if draw(st.booleans()):
        secret["stringData"] = draw(st.dictionaries(keys, maybe_words, min_size=1, max_size=4))
    if draw(st.booleans()):
        secret["type"] = draw(words)
    return secret


def encode_time(number: int, value: str | None, nanos: int) -> bytes:
    if value is None:
        return time_(number, None)
    moment = dt.datetime.fromisoformat(value.removesuffix("Z")).replace(tzinfo=dt.UTC)
    seconds = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(seconds=1)
    return time_(number, seconds, nanos)


def encode_secret(secret: dict[str, Any], *, noise: bytes, nanos: int) -> bytes:
    """``secret`` as Go writes a v1.Secret: zero non-pointer fields included, maps sorted by key;
    ``noise`` (unknown fields) goes in front of every message."""
    m = secret["metadata"]
    meta_bytes = noise + b"".join(
        text(n, m.get(name, ""))
        for n, name in enumerate(
            ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion"), start=1
        )
    )
    meta_bytes += num(7, m.get("generation", 0)) + encode_time(8, m["creationTimestamp"], nanos)
    if "deletionGracePeriodSeconds" in m:
        meta_bytes += num(10, m["deletionGracePeriodSeconds"])
    for number, name in ((11, "labels"), (12, "annotations")):
        meta_bytes += b"".join(entry(number, k, v.encode()) for k, v in sorted(m.get(name, {}).items()))
    meta_bytes += b"".join(text(14, f) for f in m.get("finalizers", []))
    raw = noise + ld(1, meta_bytes)
    if "immutable" in secret:
        raw += num(5, int(secret["immutable"]))
    raw += b"".join(entry(2, k, base64.b64decode(v)) for k, v in sorted(secret.get("data", {}).items()))
    raw += b"".join(entry(4, k, v.encode()) for k, v in sorted(secret.get("stringData", {}).items()))
    raw += text(3, secret.get("type", ""))
    return envelope("v1", "Secret", raw)


@given(
    secrets(),
    st.lists(st.sampled_from(list(UNKNOWN.values())), max_size=3).map(b"".join),
    st.integers(min_value=0, max_value=999_999_999),
)
def test_secret_round_trips(secret: dict[str, Any], noise: bytes, nanos: int) -> None:
    assert decode(encode_secret(secret, noise=noise, nanos=nanos)) == secret
