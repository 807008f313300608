"""What a request to the resource paths asks for, read as the Kubernetes apiserver reads it.

The path names a :class:`Target` (a kind, maybe a namespace, an object, a subresource); the method
and ``?watch`` name the verb; the query gives the write options (``fieldValidation``, ``dryRun``),
the selectors, the paging token and the watch timeout; the body is JSON (or Kubernetes protobuf for
a create or an update) of at most :data:`MAX_BODY_BYTES`. Everything malformed raises the
``ApiError`` Kubernetes answers with (400, 405, 413, 415, 422) before any handler acts, naming the
parameter or field, so a handler only sees a well-formed request:

* a boolean query parameter reads as Kubernetes reads it (absent, ``false`` or ``0`` is false,
  anything else true), so it never fails; an integer one must be an integer in range (400);
* a DeleteOptions body is decoded against its official schema like any object (a ``dryRun`` that
  is not a list of strings is a 400, an unknown ``propagationPolicy`` a 422).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from federation.apimachinery import protobuf
from federation.apimachinery.errors import (
    Cause,
    bad_request,
    invalid,
    method_not_allowed,
    too_large,
    unsupported_media_type,
)
from federation.apimachinery.jsonbody import parse_json_body
from federation.apimachinery.objects import dump_json, labels_of, name_of, namespace_of
from federation.apimachinery.registry import PatchType, WriteOptions
from federation.apimachinery.resources import Obj, ResourceType, Scheme
from federation.apimachinery.schema import FieldValidation, SchemaSet
from federation.apimachinery.selectors import parse_field_selector, parse_label_selector
from federation.apimachinery.storage import ObjectFilter

MAX_BODY_BYTES = 3 * 1024 * 1024
PATCH_TYPES: dict[str, PatchType] = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}
JSON = "application/json"
DELETE_OPTIONS_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Target:
    """What a request path names: a kind, maybe a namespace, maybe an object and a subresource."""

    rt: ResourceType
    namespace: str | None
    name: str | None = None
    subresource: str | None = None


def resolve(scheme: Scheme, prefix: str, path: str) -> Target | tuple[str, str] | None:
    """A :class:`Target`, or (group, version) for a discovery document, or None."""
    parts = [p for p in path.split("/") if p]
    if prefix == "api":
        if not parts:
            return None
        group, version, rest = "", parts[0], parts[1:]
    else:
        if len(parts) < 2:
            return None
        group, version, rest = parts[0], parts[1], parts[2:]
    if not rest:
        return (group, version)
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        rt = scheme.lookup(group, version, rest[2])
        if rt is None or not rt.namespaced or len(rest) > 5:
            return None
        return Target(rt, rest[1], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None)
    rt = scheme.lookup(group, version, rest[0])
    if rt is None or len(rest) > 3:
        return None
    if rt.namespaced and len(rest) > 1:
        return None
    return Target(rt, None, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)


def verb_of(request: Request, target: Target) -> str:
    """The Kubernetes verb of a request for ``target`` (405 for a method it does not take)."""
    method = request.method
    if method == "GET":
        if target.name is None:
            return "watch" if query_flag(request, "watch") else "list"
        return "get"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if target.name is not None else "deletecollection"
    raise method_not_allowed(f"method {method} is not supported")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


# ------------------------------------------------------------------ bodies


async def read_body(request: Request) -> bytes:
    """The whole body, refused (413) as soon as it passes :data:`MAX_BODY_BYTES`."""
    length = request.headers.get("content-length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large(MAX_BODY_BYTES)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large(MAX_BODY_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, opts: WriteOptions) -> tuple[Any, list[str]]:
    """The JSON body and the warnings about it; duplicated fields per ``fieldValidation``."""
    raw = await read_body(request)
    if not raw.strip():
        raise bad_request("the request body is empty")
    value, duplicates = parse_json_body(raw)
    warnings: list[str] = []
    if duplicates:
        if opts.field_validation == "Strict":
            raise bad_request(
                "strict decoding error: " + ", ".join(f'json: duplicate field "{d}"' for d in duplicates)
            )
        if opts.field_validation == "Warn":
            warnings += [f'duplicate field "{d}"' for d in duplicates]
    return value, warnings


def check_content_type(request: Request) -> str:
    ctype = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    if ctype not in (JSON, "*/*", "", protobuf.MEDIA_TYPE):
        raise unsupported_media_type(ctype)
    return ctype


async def object_body(request: Request, opts: WriteOptions) -> tuple[Any, list[str]]:
    """The object of a create or update: JSON, or Kubernetes protobuf read as the same JSON."""
    if check_content_type(request) == protobuf.MEDIA_TYPE:
        return protobuf.decode(await read_body(request)), []
    return await json_body(request, opts)


def patch_type_of(request: Request) -> PatchType:
    """The kind of patch the content type names (415 for any other)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    patch_type = PATCH_TYPES.get(ctype)
    if patch_type is None:
        raise unsupported_media_type(ctype)
    return patch_type


async def delete_options(request: Request, schemas: SchemaSet) -> dict[str, Any]:
    """The DeleteOptions body of a delete, ``{}`` when there is none; decoded against its schema
    (400 for a field of the wrong type), with ``propagationPolicy`` checked (422)."""
    raw = await read_body(request)
    if not raw.strip():
        body: dict[str, Any] = {}
    else:
        parsed, _ = parse_json_body(raw)
        if not isinstance(parsed, dict):
            raise bad_request("DeleteOptions must be an object")
        schemas.decode(parsed, DELETE_OPTIONS_REF, field_validation="Ignore")
        body = parsed
    policy = request.query_params.get("propagationPolicy") or body.get("propagationPolicy")
    if policy is not None and policy not in PROPAGATION_POLICIES:
        supported = ", ".join(f'"{p}"' for p in PROPAGATION_POLICIES)
        raise invalid(
            "DeleteOptions",
            "",
            [
                Cause(
                    "propagationPolicy",
                    f'Unsupported value: "{policy}": supported values: {supported}',
                    "FieldValueNotSupported",
                )
            ],
            "meta.k8s.io",
        )
    query_int(request, "gracePeriodSeconds")
    return body


# ------------------------------------------------------------------ query


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter as Kubernetes reads it (``Convert_Slice_string_To_bool``): absent,
    ``0`` or ``false`` (any case) is false; anything else, even an empty value, is true."""
    values = request.query_params.getlist(name)
    return bool(values) and values[0] != "0" and values[0].lower() != "false"


def query_optional_flag(request: Request, name: str) -> bool | None:
    """A ``*bool`` query parameter (``sendInitialEvents``): None when absent, else :func:`query_flag`."""
    return query_flag(request, name) if name in request.query_params else None


def query_int(request: Request, name: str, *, minimum: int = _INT64[0]) -> int | None:
    """An integer query parameter (None when absent or empty); 400 naming it unless it is a
    decimal int64 of at least ``minimum``."""
    text = request.query_params.get(name) or ""
    if not text:
        return None
    digits = text[1:] if text[:1] in "+-" else text
    value = int(text) if digits.isascii() and digits.isdigit() else None
    if value is None or not _INT64[0] <= value <= _INT64[1]:
        raise bad_request(f'{name}: Invalid value: "{text}": must be a decimal integer')
    if value < minimum:
        raise bad_request(f"{name}: Invalid value: {value}: must be greater than or equal to {minimum}")
    return value


def write_options(request: Request, body_dry_run: Any = None) -> WriteOptions:
    """``fieldValidation`` (Warn when absent) and ``dryRun`` of a write (from the query or DeleteOptions)."""
    q = request.query_params
    fv = q.get("fieldValidation") or "Warn"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise bad_request(f'fieldValidation must be one of Strict, Warn, Ignore, not "{fv}"')
    if body_dry_run is not None and not (
        isinstance(body_dry_run, list) and all(isinstance(d, str) for d in body_dry_run)
    ):
        raise bad_request("dryRun must be a list of strings")
    dry = q.getlist("dryRun") or (body_dry_run or [])
    for d in dry:
        if d != "All":
            raise bad_request(f'unsupported dryRun value "{d}": only "All" is allowed')
    validation: FieldValidation = fv  # type: ignore[assignment]
    return WriteOptions(field_validation=validation, dry_run=bool(dry))


def selection(
    rt: ResourceType, request: Request, hidden: Callable[[Obj], bool] | None
) -> tuple[ObjectFilter | None, dict[str, str]]:
    """The filter of a list, watch or deletecollection (its selectors, and leaving out what
    ``hidden`` names), and the label equalities a storage can use as an index."""
    q = request.query_params
    label_text = q.get("labelSelector") or ""
    field_text = q.get("fieldSelector") or ""
    label_sel = parse_label_selector(label_text) if label_text else None
    getters: dict[str, Callable[[Obj], str | None]] = {
        "metadata.name": name_of,
        "metadata.namespace": namespace_of,
    }
    getters.update(rt.strategy.field_labels())
    field_sel = parse_field_selector(field_text) if field_text else None
    if field_sel is not None:
        for field, _, _ in field_sel.requirements:
            if field not in getters:
                raise bad_request(f"field label not supported: {field}")
    if label_sel is None and field_sel is None and hidden is None:
        return None, {}

    def match(obj: Obj) -> bool:
        if hidden is not None and hidden(obj):
            return False
        if label_sel is not None and not label_sel.matches(labels_of(obj)):
            return False
        return field_sel is None or field_sel.matches(lambda f: getters[f](obj))

    return match, (label_sel.equalities() if label_sel is not None else {})


def encode_continue(rv: int, key: tuple[str, str]) -> str:
    """The ``continue`` token of a page that ended at ``key`` (namespace, name)."""
    raw = dump_json({"v": rv, "ns": key[0], "n": key[1]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[str, str] | None:
    """The (namespace, name) a ``continue`` token resumes after; None for no token, 400 for a bad one."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return (str(data["ns"]), str(data["n"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("continue key is not valid") from None
