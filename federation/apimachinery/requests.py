"""What a request to the resource paths asks for, read as the Kubernetes apiserver reads it.

The path names a :class:`Target` (a kind, maybe a namespace, an object, a subresource); the method
and ``?watch`` name the verb; the query gives the write options (``fieldValidation``, ``dryRun``),
the selectors and the paging token; the body is JSON (or Kubernetes protobuf for a create or an
update) of at most :data:`MAX_BODY_BYTES`. Everything malformed raises the ``ApiError`` Kubernetes
answers with (400, 405, 413, 415) before any handler acts, so a handler only sees a well-formed
request.
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
from federation.apimachinery.errors import bad_request, method_not_allowed, too_large, unsupported_media_type
from federation.apimachinery.jsonbody import parse_json_body
from federation.apimachinery.objects import dump_json, labels_of, name_of, namespace_of
from federation.apimachinery.registry import PatchType, WriteOptions
from federation.apimachinery.resources import Obj, ResourceType, Scheme
from federation.apimachinery.schema import FieldValidation
from federation.apimachinery.selectors import parse_field_selector, parse_label_selector
from federation.apimachinery.storage import ObjectFilter

MAX_BODY_BYTES = 3 * 1024 * 1024
PATCH_TYPES: dict[str, PatchType] = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}
JSON = "application/json"


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
            return "watch" if request.query_params.get("watch") in ("true", "1") else "list"
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
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
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


async def delete_options(request: Request) -> dict[str, Any]:
    """The DeleteOptions body of a delete, ``{}`` when there is none."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    body, _ = parse_json_body(raw)
    if not isinstance(body, dict):
        raise bad_request("DeleteOptions must be an object")
    return body


# ------------------------------------------------------------------ query


def write_options(request: Request, body_dry_run: Any = None) -> WriteOptions:
    """``fieldValidation`` (Warn when absent) and ``dryRun`` of a write (from the query or DeleteOptions)."""
    q = request.query_params
    fv = q.get("fieldValidation") or "Warn"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise bad_request(f'fieldValidation must be one of Strict, Warn, Ignore, not "{fv}"')
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
