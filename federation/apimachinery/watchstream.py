"""A watch request answered as Kubernetes answers it: newline-delimited events on one long response.

``GET ...?watch=true`` streams ``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}``
lines. What :func:`watch_response` guarantees, as the Kubernetes apiserver does:

* from ``resourceVersion=N``: every change after N, once, in order; too old a version is an
  ``ERROR`` event with a 410 Gone Status (the storage's watch decides what is too old);
* without a version (or ``0``): the current objects as ADDED first, then the changes after them
  ("Get State and Start at Most Recent"); ``sendInitialEvents=true`` (a watch-list, as kubectl 1.36
  uses) ends the initial events with a bookmark annotated ``k8s.io/initial-events-end``;
* ``allowWatchBookmarks``: a BOOKMARK with the current version every ``bookmark_interval`` seconds,
  so a client resumes past changes it was never going to see;
* every stream ends: without ``timeoutSeconds`` (or with 0) after a time drawn at random between the
  server's ``min_request_timeout`` and twice that, as kube-apiserver's ``--min-request-timeout``
  spreads the ends of watches so that clients do not all come back at once; with
  ``timeoutSeconds`` after that many seconds, at most twice ``min_request_timeout``;
* ``as=Table``: each object as a one-row Table, the column definitions in the first one;
* every object passes through ``show`` (Secret data redacted for a viewer, say).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from federation.apimachinery import requests, tables, watching
from federation.apimachinery.errors import ApiError, Cause, bad_request, gone
from federation.apimachinery.objects import dump_json
from federation.apimachinery.registry import client_version
from federation.apimachinery.requests import JSON, Target
from federation.apimachinery.resources import Obj
from federation.apimachinery.storage import ObjectFilter, Storage


def invalid_watch_list() -> ApiError:
    return ApiError(
        422,
        "Invalid",
        "sendInitialEvents=true needs resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
        causes=[
            Cause(
                "sendInitialEvents",
                "Forbidden: needs resourceVersionMatch=NotOlderThan",
                "FieldValueForbidden",
            )
        ],
    )


def watch_seconds(request: Request, min_request_timeout: float) -> float:
    """How long a watch streams: ``timeoutSeconds`` (400 unless a non-negative integer) up to twice
    ``min_request_timeout``; without it, or with 0, a random time between once and twice that."""
    asked = requests.query_int(request, "timeoutSeconds", minimum=0)
    longest = 2 * min_request_timeout
    if asked:
        return min(float(asked), longest)
    return random.uniform(min_request_timeout, longest)


def watch_response(
    request: Request,
    t: Target,
    *,
    storage: Storage,
    match: ObjectFilter | None,
    show: Callable[[Obj], Obj],
    wants_table: bool,
    bookmark_interval: float,
    min_request_timeout: float,
) -> Response:
    """The streaming answer of a watch of ``t`` (see the module docstring); malformed parameters
    raise before anything is streamed."""
    rt = t.rt
    q = request.query_params
    requested = client_version(q.get("resourceVersion"))
    bookmarks = requests.query_flag(request, "allowWatchBookmarks")
    timeout = watch_seconds(request, min_request_timeout)
    namespace = t.namespace if rt.namespaced else None
    if t.name is not None:
        raise bad_request("watch of a single object: use fieldSelector=metadata.name=NAME")
    first = True

    def encode(kind: str, obj: Obj) -> bytes:
        nonlocal first
        if wants_table and kind != "ERROR":
            obj = tables.table(rt, [obj], include=q.get("includeObject"), definitions=first)
            first = False
        return dump_json({"type": kind, "object": obj}) + b"\n"

    initial = requests.query_optional_flag(request, "sendInitialEvents")
    if initial and (q.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
        raise invalid_watch_list()

    async def events() -> AsyncIterator[bytes]:
        since: int | None = requested or None
        if initial or (initial is None and since is None):
            # The current objects first: "Get State and Start at Most Recent", or a watch-list
            # (kubectl 1.36 waits for the bookmark that ends the initial events).
            page = await storage.list(rt, namespace, match=match)
            if since is not None and page.resource_version < since:
                # asked for a state newer than the storage has: not served, as Kubernetes would time out
                yield encode("ERROR", gone(f"too large resource version: {since}").status())
                return
            for obj in page.items:
                yield encode("ADDED", show(obj))
            since = page.resource_version
            if initial:
                end = {
                    "resourceVersion": str(since),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                }
                yield encode("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": end})
        elif since is None:
            since = await storage.current_version()
        progress = bookmark_interval if bookmarks else None
        stream = watching.follow(
            storage.watch(rt, namespace, since=since, match=match, progress=progress),
            duration=timeout,
        )
        async for kind, obj, version in stream:
            if kind == "BOOKMARK":
                if bookmarks:
                    meta_only = {"resourceVersion": str(version)}
                    yield encode(kind, {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta_only})
            elif kind == "ERROR":
                yield encode(kind, obj)
            else:
                yield encode(kind, show(obj))

    return StreamingResponse(events(), media_type=JSON)
