"""Kubernetes protobuf request bodies, read as the JSON a JSON client would have sent.

kubectl 1.32 and 1.36 (not 1.27) send the object of ``kubectl create namespace``, ``create secret``
and ``create service`` as ``application/vnd.kubernetes.protobuf`` and give up on a 415 instead of
retrying with JSON. :func:`decode` turns such a body into exactly the JSON object kubectl 1.27 sends
for the same command (same keys, same omissions), so the server then takes the JSON path unchanged:
schema validation, ``fieldValidation``, strategies. Answers stay JSON; client-go reads a response by
its Content-Type.

The body is the prefix ``k8s\\x00`` and a ``runtime.Unknown`` {typeMeta {apiVersion, kind}, raw,
contentEncoding, contentType}; ``raw`` is the object's Go type in protobuf, numbered as in the
``generated.proto`` files of Kubernetes. Each message we read is a table below (field number -> JSON
name and how to read it); a field number not in its table is skipped by its wire type. A kind without
a table, or bytes that are not well-formed protobuf, get 415 asking for JSON instead.

Go writes proto2 with gogo-protobuf: every non-pointer field is on the wire even when zero, a pointer
field only when set, a ``metav1.Time`` that is zero as an empty message. Go's JSON leaves out zero
``omitempty`` fields and writes a zero Time as ``null``. So a zero scalar is dropped here unless its
field is a pointer or lacks ``omitempty`` (``keep_zero``), which gives the same JSON object.

Field numbers (they never change once released) come from:

* ``runtime.Unknown``/``TypeMeta``: kubernetes/kubernetes
  ``staging/src/k8s.io/apimachinery/pkg/runtime/generated.proto`` @ 94341df30b4a;
* ``ObjectMeta``, ``OwnerReference``, ``Time``: kubernetes/kubernetes
  ``staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`` @ 779e95a083ca; ``Condition``
  from the same file as vendored (k8s.io/apimachinery) in kubeadapt/kubeadapt-k8s-pulse @ 2d3917ec4aff;
* ``IntOrString``: kubernetes/kubernetes ``staging/src/k8s.io/apimachinery/pkg/util/intstr/generated.proto``
  @ 58bfd36ff714;
* core/v1 ``Namespace*``, ``Secret``, ``Service*``: kubernetes/api ``core/v1/generated.proto`` @ 35f2b3a24dcf,
  with the fields added since (``trafficDistribution``, ``ipMode``) from the same file as vendored
  (k8s.io/api) in kubeadapt/kubeadapt-k8s-pulse @ 2d3917ec4aff.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from federation.apimachinery.errors import ApiError, bad_request

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# wire types
VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5

Kind = Literal[
    "string", "bytes", "int", "bool", "message", "time", "int-or-string", "map-string", "map-bytes"
]
SCALARS = frozenset({"string", "bytes", "int", "bool"})


@dataclass(frozen=True)
class Field:
    """How one field number of a message reads into JSON."""

    name: str
    kind: Kind
    message: str = ""  # the table of a "message" field
    repeated: bool = False
    keep_zero: bool = False  # a Go pointer, or no omitempty: a zero value is kept


def _s(name: str, *, keep_zero: bool = False) -> Field:
    return Field(name, "string", keep_zero=keep_zero)


def _strings(name: str) -> Field:
    return Field(name, "string", repeated=True)


def _msgs(name: str, message: str) -> Field:
    return Field(name, "message", message, repeated=True)


Message = dict[int, Field]

MESSAGES: dict[str, Message] = {
    # runtime
    "TypeMeta": {1: _s("apiVersion"), 2: _s("kind")},
    # meta/v1
    "ObjectMeta": {
        1: _s("name"),
        2: _s("generateName"),
        3: _s("namespace"),
        4: _s("selfLink"),
        5: _s("uid"),
        6: _s("resourceVersion"),
        7: Field("generation", "int"),
        8: Field("creationTimestamp", "time"),
        9: Field("deletionTimestamp", "time"),
        10: Field("deletionGracePeriodSeconds", "int", keep_zero=True),
        11: Field("labels", "map-string"),
        12: Field("annotations", "map-string"),
        13: _msgs("ownerReferences", "OwnerReference"),
        14: _strings("finalizers"),
        # 17 managedFields is skipped: it belongs to server-side apply, which these servers do not
        # serve, and kubectl never sends it on create or replace.
    },
    "OwnerReference": {
        5: _s("apiVersion", keep_zero=True),
        1: _s("kind", keep_zero=True),
        3: _s("name", keep_zero=True),
        4: _s("uid", keep_zero=True),
        6: Field("controller", "bool", keep_zero=True),
        7: Field("blockOwnerDeletion", "bool", keep_zero=True),
    },
    "Condition": {
        1: _s("type", keep_zero=True),
        2: _s("status", keep_zero=True),
        3: Field("observedGeneration", "int"),
        4: Field("lastTransitionTime", "time"),
        5: _s("reason", keep_zero=True),
        6: _s("message", keep_zero=True),
    },
    # core/v1 Namespace
    "Namespace": {
        1: Field("metadata", "message", "ObjectMeta"),
        2: Field("spec", "message", "NamespaceSpec"),
        3: Field("status", "message", "NamespaceStatus"),
    },
    "NamespaceSpec": {1: _strings("finalizers")},
    "NamespaceStatus": {1: _s("phase"), 2: _msgs("conditions", "NamespaceCondition")},
    "NamespaceCondition": {
        1: _s("type", keep_zero=True),
        2: _s("status", keep_zero=True),
        4: Field("lastTransitionTime", "time"),
        5: _s("reason"),
        6: _s("message"),
    },
    # core/v1 Secret
    "Secret": {
        1: Field("metadata", "message", "ObjectMeta"),
        5: Field("immutable", "bool", keep_zero=True),
        2: Field("data", "map-bytes"),
        4: Field("stringData", "map-string"),
        3: _s("type"),
    },
    # core/v1 Service
    "Service": {
        1: Field("metadata", "message", "ObjectMeta"),
        2: Field("spec", "message", "ServiceSpec"),
        3: Field("status", "message", "ServiceStatus"),
    },
    "ServiceSpec": {
        1: _msgs("ports", "ServicePort"),
        2: Field("selector", "map-string"),
        3: _s("clusterIP"),
        18: _strings("clusterIPs"),
        4: _s("type"),
        5: _strings("externalIPs"),
        7: _s("sessionAffinity"),
        8: _s("loadBalancerIP"),
        9: _strings("loadBalancerSourceRanges"),
        10: _s("externalName"),
        11: _s("externalTrafficPolicy"),
        12: Field("healthCheckNodePort", "int"),
        13: Field("publishNotReadyAddresses", "bool"),
        14: Field("sessionAffinityConfig", "message", "SessionAffinityConfig"),
        # 16 topologyKeys was removed from Kubernetes (1.22); it is skipped.
        19: _strings("ipFamilies"),
        17: _s("ipFamilyPolicy", keep_zero=True),
        20: Field("allocateLoadBalancerNodePorts", "bool", keep_zero=True),
        21: _s("loadBalancerClass", keep_zero=True),
        22: _s("internalTrafficPolicy", keep_zero=True),
        23: _s("trafficDistribution", keep_zero=True),
    },
    "ServicePort": {
        1: _s("name"),
        2: _s("protocol"),
        6: _s("appProtocol", keep_zero=True),
        3: Field("port", "int", keep_zero=True),
        4: Field("targetPort", "int-or-string"),
        5: Field("nodePort", "int"),
    },
    "SessionAffinityConfig": {1: Field("clientIP", "message", "ClientIPConfig")},
    "ClientIPConfig": {1: Field("timeoutSeconds", "int", keep_zero=True)},
    "ServiceStatus": {
        1: Field("loadBalancer", "message", "LoadBalancerStatus"),
        2: _msgs("conditions", "Condition"),
    },
    "LoadBalancerStatus": {1: _msgs("ingress", "LoadBalancerIngress")},
    "LoadBalancerIngress": {
        1: _s("ip"),
        2: _s("hostname"),
        3: _s("ipMode", keep_zero=True),
        4: _msgs("ports", "PortStatus"),
    },
    "PortStatus": {
        1: Field("port", "int", keep_zero=True),
        2: _s("protocol", keep_zero=True),
        3: _s("error", keep_zero=True),
    },
}

KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Secret"): "Secret",
    ("v1", "Service"): "Service",
}

ZERO_TIME = -62_135_596_800  # Go's time.Time{} (0001-01-01T00:00:00Z) in Unix seconds: JSON null
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Malformed(Exception):
    """The bytes are not well-formed protobuf, or not of the shape the tables describe."""


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object that a JSON client would have sent instead of the protobuf ``body``.

    Raises :class:`ApiError` 400 for an empty body and 415 for a kind without a table or for bytes
    that do not decode, naming the kind and asking for JSON.
    """
    if not body:
        raise bad_request("the request body is empty")
    if not body.startswith(MAGIC):
        raise _refused("the body does not start with the Kubernetes protobuf prefix k8s\\x00")
    try:
        api_version, kind, raw, encoding = _envelope(body[len(MAGIC) :])
    except Malformed as err:
        raise _refused(f"the protobuf envelope (runtime.Unknown) is malformed: {err}") from None
    shown = f"{api_version}/{kind}" if api_version else kind or "an object without apiVersion and kind"
    table = KINDS.get((api_version, kind))
    if table is None:
        known = ", ".join(f"{v}/{k}" for v, k in KINDS)
        raise _refused(f"{shown} is not read from protobuf by this server (only {known})")
    if encoding:
        raise _refused(f"the {shown} body has contentEncoding {encoding!r}, which is not supported")
    try:
        obj = _message(raw, MESSAGES[table])
    except Malformed as err:
        raise _refused(f"the {shown} protobuf body is malformed: {err}") from None
    return {"kind": kind, "apiVersion": api_version, **obj}


def _refused(why: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"{why}; send the object as JSON (Content-Type: application/json), e.g. with kubectl apply -f",
    )


def _envelope(buf: bytes) -> tuple[str, str, bytes, str]:
    """apiVersion, kind, raw and contentEncoding of a ``runtime.Unknown``."""
    type_meta: dict[str, Any] = {}
    raw = b""
    encoding = ""
    for number, wire, value in _fields(buf):
        if number == 1:
            type_meta = _message(_length_delimited(number, wire, value), MESSAGES["TypeMeta"])
        elif number == 2:
            raw = _length_delimited(number, wire, value)
        elif number == 3:
            encoding = _text(_length_delimited(number, wire, value))
        # 4 contentType: the raw bytes are protobuf whatever it says (as in Kubernetes).
    return str(type_meta.get("apiVersion", "")), str(type_meta.get("kind", "")), raw, encoding


# ---------------------------------------------------------------------------- wire format


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos
    raise Malformed("varint longer than 10 bytes")


def _skip(buf: bytes, pos: int, size: int) -> int:
    if size > len(buf) - pos:
        raise Malformed(f"a field of {size} bytes runs past the end of its message")
    return pos + size


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of one message: an int for a varint, the
    bytes for the others. Groups (deprecated, never written by Kubernetes) are skipped whole."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise Malformed("field number 0")
        if wire == VARINT:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == LENGTH:
            size, pos = _varint(buf, pos)
            start, pos = pos, _skip(buf, pos, size)
            yield number, wire, buf[start:pos]
        elif wire in (FIXED64, FIXED32):
            start, pos = pos, _skip(buf, pos, 8 if wire == FIXED64 else 4)
            yield number, wire, buf[start:pos]
        elif wire == START_GROUP:
            pos = _skip_group(buf, pos, number)
        else:
            raise Malformed(f"unexpected wire type {wire} for field {number}")


def _skip_group(buf: bytes, pos: int, number: int) -> int:
    """The position after the group ``number`` that starts at ``pos`` (nested groups included)."""
    open_groups = [number]
    while open_groups:
        if pos >= len(buf):
            raise Malformed(f"group {open_groups[-1]} is not closed")
        key, pos = _varint(buf, pos)
        inner, wire = key >> 3, key & 7
        if wire == START_GROUP:
            open_groups.append(inner)
        elif wire == END_GROUP:
            if inner != open_groups.pop():
                raise Malformed(f"group {number} closed by field {inner}")
        elif wire == VARINT:
            _, pos = _varint(buf, pos)
        elif wire == LENGTH:
            size, pos = _varint(buf, pos)
            pos = _skip(buf, pos, size)
        elif wire in (FIXED64, FIXED32):
            pos = _skip(buf, pos, 8 if wire == FIXED64 else 4)
        else:
            raise Malformed(f"unexpected wire type {wire} in group {number}")
    return pos


# ---------------------------------------------------------------------------- values


def _message(buf: bytes, table: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, wire, value in _fields(buf):
        field = table.get(number)
        if field is None:
            continue  # unknown, or deliberately not read: already skipped by its wire type
        decoded = _value(field, wire, value)
        if field.kind in ("map-string", "map-bytes"):
            key, item = decoded
            out.setdefault(field.name, {})[key] = item
        elif field.repeated:
            out.setdefault(field.name, []).append(decoded)
        elif field.kind in SCALARS and not field.keep_zero and decoded in ("", 0):
            out.pop(field.name, None)  # the last value wins, and a zero omitempty is not in JSON
        else:
            out[field.name] = decoded
    return out


def _value(field: Field, wire: int, value: int | bytes) -> Any:
    if field.kind in ("int", "bool"):
        if not isinstance(value, int):
            raise Malformed(f"{field.name} has wire type {wire}, not a varint")
        return _signed(value) if field.kind == "int" else value != 0
    if not isinstance(value, bytes) or wire != LENGTH:
        raise Malformed(f"{field.name} has wire type {wire}, not length-delimited")
    if field.kind == "string":
        return _text(value)
    if field.kind == "bytes":
        return base64.b64encode(value).decode()
    if field.kind == "message":
        return _message(value, MESSAGES[field.message])
    if field.kind == "time":
        return _time(value)
    if field.kind == "int-or-string":
        return _int_or_string(value)
    return _map_entry(value, binary=field.kind == "map-bytes")


def _signed(value: int) -> int:
    """An int64 (or a sign-extended int32) from its unsigned varint."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise Malformed("a string is not UTF-8") from None


def _varint_field(number: int, wire: int, value: int | bytes) -> int:
    if not isinstance(value, int):
        raise Malformed(f"field {number} has wire type {wire}, not a varint")
    return value


def _length_delimited(number: int, wire: int, value: int | bytes) -> bytes:
    if not isinstance(value, bytes) or wire != LENGTH:
        raise Malformed(f"field {number} has wire type {wire}, not length-delimited")
    return value


def _time(buf: bytes) -> str | None:
    """A ``metav1.Time`` {int64 seconds = 1; int32 nanos = 2} as RFC 3339, None when zero.

    Nanoseconds are dropped: the JSON form has whole seconds, and Kubernetes itself truncates them
    when it decodes protobuf (``metav1.Time.Unmarshal``)."""
    seconds = 0 if buf else ZERO_TIME  # Go writes a zero Time as an empty message
    for number, wire, value in _fields(buf):
        if number == 1:
            seconds = _signed(_varint_field(number, wire, value))
    if seconds == ZERO_TIME:
        return None
    try:
        moment = EPOCH + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise Malformed(f"time {seconds}s after 1970 is outside years 1 to 9999") from None
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def _int_or_string(buf: bytes) -> int | str:
    """An ``intstr.IntOrString`` {int64 type = 1; int32 intVal = 2; string strVal = 3}."""
    kind, number_value, text = 0, 0, ""
    for number, wire, value in _fields(buf):
        if number == 1:
            kind = _signed(_varint_field(number, wire, value))
        elif number == 2:
            number_value = _signed(_varint_field(number, wire, value))
        elif number == 3:
            text = _text(_length_delimited(number, wire, value))
    return text if kind == 1 else number_value


def _map_entry(buf: bytes, *, binary: bool) -> tuple[str, str]:
    """A map entry {string key = 1; string|bytes value = 2}; bytes values are base64 in JSON."""
    key, item = "", b""
    for number, wire, value in _fields(buf):
        if number == 1:
            key = _text(_length_delimited(number, wire, value))
        elif number == 2:
            item = _length_delimited(number, wire, value)
    return key, base64.b64encode(item).decode() if binary else _text(item)
