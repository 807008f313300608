"""One Kubernetes API server, for any scheme over any storage.

``build_app`` turns a :class:`~federation.apimachinery.resources.Scheme`, a
:class:`~federation.apimachinery.storage.Storage` and an authenticator into an ASGI application
that speaks the Kubernetes REST API as kubectl and the official clients expect it: discovery,
OpenAPI v3, CRUD with merge/strategic/JSON patches, ``/status`` and ``/scale``, label and field
selectors, paging, watches with resume and bookmarks, Tables for ``kubectl get``, and every error
as a ``metav1.Status``. The federation API (Postgres) and each simulated member cluster (memory)
are both this server; only their schemes, storages and authenticators differ.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from federation import metrics
from federation.apimachinery import discovery, protobuf, tables, watching
from federation.apimachinery.auth import SYSTEM_NAMESPACE, Authenticator, Principal, authorize
from federation.apimachinery.errors import (
    ApiError,
    Cause,
    NotFound,
    bad_request,
    gone,
    internal,
    method_not_allowed,
    not_found,
    too_large,
    unauthorized,
    unsupported_media_type,
)
from federation.apimachinery.jsonbody import parse_json_body
from federation.apimachinery.objects import dump_json, labels_of, meta, name_of, namespace_of
from federation.apimachinery.openapi import (
    openapi_v2_protobuf,
    openapi_v3_document,
    openapi_v3_index,
)
from federation.apimachinery.registry import FieldValidation, PatchType, Registry, WriteOptions
from federation.apimachinery.resources import Obj, ResourceType, Scheme
from federation.apimachinery.schema import SchemaSet
from federation.apimachinery.selectors import parse_field_selector, parse_label_selector
from federation.apimachinery.storage import ObjectFilter, Storage

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 3 * 1024 * 1024
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/livez"})
PATCH_TYPES: dict[str, PatchType] = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}
JSON = "application/json"


@dataclass(frozen=True)
class ServerOptions:
    title: str
    version: dict[str, str]
    metrics_open: bool = False
    bookmark_interval: float = 5.0
    max_watch_seconds: int = 1800


def _quoted(text: str) -> str:
    """A warning text as an RFC 7234 quoted-string (what Kubernetes sends)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _response(body: Any, code: int = 200, warnings: tuple[str, ...] = ()) -> Response:
    headers = {"Warning": ", ".join(f'299 - "{_quoted(w)}"' for w in warnings)} if warnings else None
    return Response(dump_json(body), status_code=code, media_type=JSON, headers=headers)


def _error(err: ApiError) -> Response:
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else None
    return Response(dump_json(err.status()), status_code=err.code, media_type=JSON, headers=headers)


@dataclass(frozen=True)
class Target:
    """What a request path names: a kind, maybe a namespace, maybe an object and a subresource."""

    rt: ResourceType
    namespace: str | None
    name: str | None = None
    subresource: str | None = None


class ApiServer:
    def __init__(
        self,
        scheme: Scheme,
        storage: Storage,
        schemas: SchemaSet,
        authenticator: Authenticator,
        options: ServerOptions,
    ) -> None:
        self.scheme = scheme
        self.storage = storage
        self.schemas = schemas
        self.registry = Registry(scheme, storage, schemas)
        self.authenticate = authenticator
        self.options = options
        self._metrics: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    # ------------------------------------------------------------------ paths

    def resolve(self, prefix: str, path: str) -> Target | tuple[str, str] | None:
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
            rt = self.scheme.lookup(group, version, rest[2])
            if rt is None or not rt.namespaced or len(rest) > 5:
                return None
            return Target(rt, rest[1], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None)
        rt = self.scheme.lookup(group, version, rest[0])
        if rt is None or len(rest) > 3:
            return None
        if rt.namespaced and len(rest) > 1:
            return None
        return Target(rt, None, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)

    # ------------------------------------------------------------------ request plumbing

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        found = await self.authenticate(token)
        if found is None:
            raise unauthorized()
        return found

    async def body(self, request: Request) -> bytes:
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

    async def json_body(self, request: Request, opts: WriteOptions) -> tuple[Any, list[str]]:
        raw = await self.body(request)
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

    @staticmethod
    def write_options(request: Request, body_dry_run: Any = None) -> WriteOptions:
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

    def check_content_type(self, request: Request) -> str:
        ctype = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
        if ctype not in (JSON, "*/*", "", protobuf.MEDIA_TYPE):
            raise unsupported_media_type(ctype)
        return ctype

    async def object_body(self, request: Request, opts: WriteOptions) -> tuple[Any, list[str]]:
        """The object of a create or update: JSON, or Kubernetes protobuf read as the same JSON."""
        if self.check_content_type(request) == protobuf.MEDIA_TYPE:
            return protobuf.decode(await self.body(request)), []
        return await self.json_body(request, opts)

    def visible(self, principal: Principal, rt: ResourceType, obj: Obj) -> Obj:
        if rt.sealed_fields and not principal.sees_secret_data:
            return rt.strategy.redact(obj)
        return obj

    # ------------------------------------------------------------------ selection

    def selection(
        self, rt: ResourceType, request: Request, principal: Principal
    ) -> tuple[ObjectFilter | None, dict[str, str]]:
        """The filter of a list, watch or deletecollection: its selectors, and for anyone but an
        admin, nothing in the credentials namespace (a cluster-wide request names no namespace
        for the role check to refuse)."""
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
        hide_system = principal.role != "admin" and rt.namespaced
        if label_sel is None and field_sel is None and not hide_system:
            return None, {}

        def match(obj: Obj) -> bool:
            if hide_system and namespace_of(obj) == SYSTEM_NAMESPACE:
                return False
            if label_sel is not None and not label_sel.matches(labels_of(obj)):
                return False
            return field_sel is None or field_sel.matches(lambda f: getters[f](obj))

        return match, (label_sel.equalities() if label_sel is not None else {})

    # ------------------------------------------------------------------ handlers

    async def handle(self, request: Request, prefix: str, path: str) -> Response:
        started = time.perf_counter()
        verb = request.method.lower()
        resource = "unknown"
        try:
            resolved = self.resolve(prefix, path)
            principal = await self.principal(request)
            if resolved is None:
                raise not_found("", path.strip("/") or prefix)
            if isinstance(resolved, tuple):
                resource = "discovery"
                found = discovery.resource_list(self.scheme, *resolved)
                if found is None:
                    group, version = resolved
                    raise not_found("", f"{group}/{version}" if group else version)
                response = _response(found)
            else:
                resource = resolved.rt.plural
                verb = self.verb_of(request, resolved)
                if resolved.subresource:
                    if resolved.subresource not in resolved.rt.subresources:
                        raise not_found(resolved.rt.plural, resolved.subresource, resolved.rt.group)
                    resource += f"/{resolved.subresource}"  # a known one only: bounded label values
                authorize(
                    principal,
                    verb,
                    plural=resolved.rt.plural,
                    namespace=resolved.namespace,
                    name=resolved.name,
                    admin_writes=resolved.rt.admin_writes,
                )
                response = await self.dispatch(request, verb, resolved, principal)
        except ApiError as err:
            response = _error(err)
        except Exception:
            log.exception("%s %s/%s failed", request.method, prefix, path)
            response = _error(internal("an internal error occurred; see the server log"))
        count, duration = self._request_metrics(verb, resource, response.status_code)
        count.inc()
        if verb != "watch":
            duration.observe(time.perf_counter() - started)
        return response

    def _request_metrics(self, verb: str, resource: str, code: int) -> tuple[Counter, Histogram]:
        """The request counter and duration histogram of these labels. Kept, because ``labels()``
        takes a lock and checks its arguments each time, which costs more than the update."""
        key = (verb, resource, code)
        found = self._metrics.get(key)
        if found is None:
            found = (
                metrics.API_REQUESTS_TOTAL.labels(verb, resource, str(code)),
                metrics.API_REQUEST_DURATION_SECONDS.labels(verb, resource),
            )
            self._metrics[key] = found
        return found

    @staticmethod
    def verb_of(request: Request, target: Target) -> str:
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

    async def dispatch(self, request: Request, verb: str, t: Target, principal: Principal) -> Response:
        rt = t.rt
        ns = t.namespace or ""
        if t.name is None and verb in ("update", "patch"):
            raise method_not_allowed(f"{verb} needs an object name")
        if t.name is not None and verb == "create":
            raise method_not_allowed("create is a POST to the collection, without a name")
        if rt.namespaced and t.namespace is None and verb in ("create", "deletecollection"):
            raise not_found("namespaces", "", "")
        wants_table = "as=Table" in request.headers.get("accept", "")
        if verb == "get":
            assert t.name is not None
            obj = await self.registry.get(rt, ns, t.name)
            if t.subresource == "scale":
                return _response(self.registry.scale_of(rt, obj))
            obj = self.visible(principal, rt, obj)
            if wants_table:
                return _response(tables.table(rt, [obj], include=request.query_params.get("includeObject")))
            return _response(obj)
        if verb == "list":
            return await self.list_objects(request, t, principal, wants_table)
        if verb == "watch":
            return self.watch(request, t, principal, wants_table)
        if verb == "create":
            opts = self.write_options(request)
            body, warnings = await self.object_body(request, opts)
            outcome = await self.registry.create(rt, ns, body, opts)
            return _response(
                self.visible(principal, rt, outcome.object), 201, tuple(warnings) + outcome.warnings
            )
        if verb == "update":
            assert t.name is not None
            opts = self.write_options(request)
            body, warnings = await self.object_body(request, opts)
            if t.subresource == "scale":
                outcome = await self.registry.update_scale(rt, ns, t.name, body, opts)
            else:
                outcome = await self.registry.update(rt, ns, t.name, body, opts, subresource=t.subresource)
            return _response(
                self.visible(principal, rt, outcome.object), 200, tuple(warnings) + outcome.warnings
            )
        if verb == "patch":
            assert t.name is not None
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            patch_type = PATCH_TYPES.get(ctype)
            if patch_type is None:
                raise unsupported_media_type(ctype)
            opts = self.write_options(request)
            patch, warnings = await self.json_body(request, opts)
            outcome = await self.registry.patch(
                rt, ns, t.name, patch_type, patch, opts, subresource=t.subresource
            )
            return _response(
                self.visible(principal, rt, outcome.object), 200, tuple(warnings) + outcome.warnings
            )
        if verb == "delete":
            assert t.name is not None
            return await self.delete(request, t, principal)
        if verb == "deletecollection":
            return await self.delete_collection(request, t, principal)
        raise method_not_allowed(f"{verb} is not supported")

    async def list_objects(
        self, request: Request, t: Target, principal: Principal, wants_table: bool
    ) -> Response:
        rt = t.rt
        q = request.query_params
        match, equalities = self.selection(rt, request, principal)
        limit_text = q.get("limit") or "0"
        if not limit_text.isdigit():
            raise bad_request(f'limit must be a non-negative integer, not "{limit_text}"')
        after = _decode_continue(q.get("continue") or "")
        page = await self.storage.list(
            rt,
            t.namespace if rt.namespaced else None,
            match=match,
            label_equals=equalities or None,
            limit=int(limit_text),
            after=after,
        )
        items = [self.visible(principal, rt, o) for o in page.items]
        list_meta: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_key is not None:
            list_meta["continue"] = _encode_continue(page.resource_version, page.continue_key)
        if wants_table:
            body = tables.table(rt, items, include=q.get("includeObject"))
            body["metadata"] = list_meta
            return _response(body)
        for item in items:
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", rt.kind)
        return _response(
            {"kind": rt.list_kind_name, "apiVersion": rt.api_version, "metadata": list_meta, "items": items}
        )

    def watch(self, request: Request, t: Target, principal: Principal, wants_table: bool) -> Response:
        rt = t.rt
        q = request.query_params
        match, _ = self.selection(rt, request, principal)
        rv_text = q.get("resourceVersion") or ""
        if rv_text and not rv_text.isdigit():
            raise bad_request(f'resourceVersion must be a decimal number, not "{rv_text}"')
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout_text = q.get("timeoutSeconds") or ""
        # 0 or none: the server's own limit, as Kubernetes
        timeout = (
            min(int(timeout_text), self.options.max_watch_seconds)
            if timeout_text.isdigit() and int(timeout_text) > 0
            else self.options.max_watch_seconds
        )
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

        initial = q.get("sendInitialEvents")
        if initial == "true" and (q.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
            raise invalid_watch_list()

        async def events() -> AsyncIterator[bytes]:
            since: int | None = int(rv_text) if rv_text not in ("", "0") else None
            if initial == "true" or (initial is None and since is None):
                # The current objects first: "Get State and Start at Most Recent", or a watch-list
                # (kubectl 1.36 waits for the bookmark that ends the initial events).
                page = await self.storage.list(rt, namespace, match=match)
                if since is not None and page.resource_version < since:
                    # asked for a state newer than the storage has: not served, as Kubernetes would time out
                    yield encode("ERROR", gone(f"too large resource version: {since}").status())
                    return
                for obj in page.items:
                    yield encode("ADDED", self.visible(principal, rt, obj))
                since = page.resource_version
                if initial == "true":
                    end = {
                        "resourceVersion": str(since),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    }
                    yield encode("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": end})
            elif since is None:
                since = await self.storage.current_version()
            progress = self.options.bookmark_interval if bookmarks else None
            stream = watching.follow(
                self.storage.watch(rt, namespace, since=since, match=match, progress=progress),
                duration=timeout,
            )
            async for kind, obj, version in stream:
                if kind == "BOOKMARK":
                    if bookmarks:
                        meta_only = {"resourceVersion": str(version)}
                        yield encode(
                            kind, {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta_only}
                        )
                elif kind == "ERROR":
                    yield encode(kind, obj)
                else:
                    yield encode(kind, self.visible(principal, rt, obj))

        return StreamingResponse(events(), media_type=JSON)

    async def delete_options(self, request: Request) -> dict[str, Any]:
        raw = await self.body(request)
        if not raw.strip():
            return {}
        body, _ = parse_json_body(raw)
        if not isinstance(body, dict):
            raise bad_request("DeleteOptions must be an object")
        return body

    async def delete(self, request: Request, t: Target, principal: Principal) -> Response:
        assert t.name is not None
        options = await self.delete_options(request)
        opts = self.write_options(request, options.get("dryRun"))
        outcome = await self.registry.delete(
            t.rt, t.namespace or "", t.name, preconditions=options.get("preconditions"), dry_run=opts.dry_run
        )
        if outcome.deleted:
            m = meta(outcome.object)
            return _response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": m.get("name"),
                        "group": t.rt.group,
                        "kind": t.rt.plural,
                        "uid": m.get("uid"),
                    },
                }
            )
        return _response(self.visible(principal, t.rt, outcome.object), 202 if not opts.dry_run else 200)

    async def delete_collection(self, request: Request, t: Target, principal: Principal) -> Response:
        rt = t.rt
        match, equalities = self.selection(rt, request, principal)
        options = await self.delete_options(request)
        opts = self.write_options(request, options.get("dryRun"))
        page = await self.storage.list(rt, t.namespace, match=match, label_equals=equalities or None)
        for obj in page.items:  # every item is allowed, or nothing is deleted
            authorize(
                principal,
                "delete",
                plural=rt.plural,
                namespace=t.namespace,
                name=name_of(obj),
                admin_writes=rt.admin_writes,
            )
        removed: list[Obj] = []
        for obj in page.items:
            try:
                outcome = await self.registry.delete(
                    rt, namespace_of(obj), name_of(obj), dry_run=opts.dry_run
                )
            except NotFound:
                continue
            removed.append(self.visible(principal, rt, outcome.object))
        return _response(
            {
                "kind": rt.list_kind_name,
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(await self.storage.current_version())},
                "items": removed,
            }
        )


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


def _encode_continue(rv: int, key: tuple[str, str]) -> str:
    raw = dump_json({"v": rv, "ns": key[0], "n": key[1]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return (str(data["ns"]), str(data["n"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("continue key is not valid") from None


Lifespan = Callable[[], Awaitable[None]]
Endpoint = Callable[[Request], Awaitable[Response]]
RESOURCE_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
"""The methods of the ``/api/{path}`` and ``/apis/{path}`` routes (Starlette adds HEAD to GET)."""


class KubernetesApp(FastAPI):
    """FastAPI, except that requests for the resource paths skip its middleware and router.

    ``/api/...`` and ``/apis/...`` carry nearly all the traffic. Through FastAPI they pass
    ServerErrorMiddleware, the exception, telemetry and body-limit middlewares, an AsyncExitStack
    and a match against every route before they reach the endpoint: about a fifth of the server's
    CPU for a create and a quarter for a get. None of it does anything for these requests: the
    endpoint turns every error into a ``metav1.Status``, limits the body size, and records the
    metrics itself. So ``__call__`` hands a request straight to the endpoint its route would have
    reached; anything that might match another route (``GET /apis/{group}``), another method, a
    websocket or the lifespan still goes through FastAPI, so every answer stays the same
    (``tests/integration/test_api_routing.py`` compares the two ways).
    """

    core_endpoint: Endpoint | None = None
    groups_endpoint: Endpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint, path = self._resource_route(scope)
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        scope["path_params"] = {"path": path}
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    def _resource_route(self, scope: Scope) -> tuple[Endpoint | None, str]:
        """The endpoint of ``/api/{path:path}`` or ``/apis/{path:path}`` when the request would
        reach it through the router, and its ``path`` parameter."""
        if scope["type"] != "http" or scope["method"] not in RESOURCE_METHODS:
            return None, ""
        full: str = scope["path"]
        if scope.get("root_path") or "\n" in full:
            return None, ""  # the router's business: a mount prefix; a path its patterns do not match
        if full.startswith("/api/"):
            return self.core_endpoint, full[5:]
        if full.startswith("/apis/"):
            path = full[6:]
            if scope["method"] == "GET" and path and "/" not in path:
                return None, ""  # GET /apis/{group}: FastAPI's route comes first
            return self.groups_endpoint, path
        return None, ""


def build_app(
    *,
    scheme: Scheme,
    storage: Storage,
    schemas: SchemaSet,
    authenticator: Authenticator,
    version: dict[str, str],
    title: str,
    metrics_open: bool = False,
    bookmark_interval: float = 5.0,
    on_startup: list[Lifespan] | None = None,
    on_shutdown: list[Lifespan] | None = None,
    ready: Callable[[], Awaitable[bool]] | None = None,
) -> FastAPI:
    """The ASGI app of one Kubernetes API server (see the module docstring)."""
    options = ServerOptions(
        title=title, version=version, metrics_open=metrics_open, bookmark_interval=bookmark_interval
    )
    server = ApiServer(scheme, storage, schemas, authenticator, options)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup or []:
            await hook()
        await server.registry.resume_terminations()
        try:
            yield
        finally:
            await server.registry.close()
            for hook in on_shutdown or []:
                await hook()

    app = KubernetesApp(
        title=title,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.api = server

    async def guarded(request: Request, produce: Callable[[], Any]) -> Response:
        try:
            await server.principal(request)
            return _response(produce())
        except ApiError as err:
            return _error(err)

    @app.get("/healthz")
    @app.get("/livez")
    async def healthz() -> Response:
        return Response(b"ok", media_type="text/plain")

    @app.get("/readyz")
    async def readyz() -> Response:
        if ready is not None and not await ready():
            return Response(b"not ready", status_code=503, media_type="text/plain")
        return Response(b"ok", media_type="text/plain")

    @app.get("/version")
    @app.get("/version/")
    async def version_info(request: Request) -> Response:
        return await guarded(request, lambda: version)

    @app.get("/api")
    async def api_root(request: Request) -> Response:
        return await guarded(request, lambda: discovery.api_versions(scheme))

    @app.get("/apis")
    async def apis_root(request: Request) -> Response:
        return await guarded(request, lambda: discovery.api_groups(scheme))

    @app.get("/apis/{group}")
    async def api_group(request: Request, group: str) -> Response:
        def produce() -> Any:
            found = discovery.api_group(scheme, group)
            if found is None:
                raise not_found("", group)
            return found

        return await guarded(request, produce)

    openapi_v2 = openapi_v2_protobuf(title)

    @app.get("/openapi/v2")
    async def openapi_v2_doc(request: Request) -> Response:
        try:
            await server.principal(request)
        except ApiError as err:
            return _error(err)
        return Response(openapi_v2, media_type="application/octet-stream")

    @app.get("/openapi/v3")
    async def openapi_index(request: Request) -> Response:
        return await guarded(request, lambda: openapi_v3_index(scheme, schemas=schemas))

    @app.get("/openapi/v3/{path:path}")
    async def openapi_doc(request: Request, path: str) -> Response:
        def produce() -> Any:
            parts = [p for p in path.split("/") if p]
            if parts[:1] == ["api"] and len(parts) == 2:
                group, ver = "", parts[1]
            elif parts[:1] == ["apis"] and len(parts) == 3:
                group, ver = parts[1], parts[2]
            else:
                raise not_found("", path)
            if not scheme.in_group_version(group, ver):
                raise not_found("", path)
            return openapi_v3_document(scheme, group, ver, schemas=schemas)

        return await guarded(request, produce)

    @app.get("/metrics")
    async def metrics_endpoint(request: Request) -> Response:
        if not metrics_open:
            try:
                await server.principal(request)
            except ApiError as err:
                return _error(err)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The resource paths carry nearly all traffic: KubernetesApp calls these two endpoints
    # directly; the routes remain for what it leaves to FastAPI (other methods, say).
    async def core(request: Request) -> Response:
        path = request.path_params["path"]
        if not path.strip("/") and request.method == "GET":
            return await guarded(request, lambda: discovery.api_versions(scheme))
        return await server.handle(request, "api", path)

    async def groups(request: Request) -> Response:
        path = request.path_params["path"]
        if not path.strip("/") and request.method == "GET":
            return await guarded(request, lambda: discovery.api_groups(scheme))
        return await server.handle(request, "apis", path)

    methods = sorted(RESOURCE_METHODS)
    app.router.routes.append(Route("/api/{path:path}", core, methods=methods))
    app.router.routes.append(Route("/apis/{path:path}", groups, methods=methods))
    app.core_endpoint, app.groups_endpoint = core, groups

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> Response:
        return _error(err)

    return app
