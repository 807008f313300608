"""One Kubernetes API server, for any scheme over any storage.

``build_app`` turns a :class:`~federation.apimachinery.resources.Scheme`, a
:class:`~federation.apimachinery.storage.Storage` and an authenticator into an ASGI application
that speaks the Kubernetes REST API as kubectl and the official clients expect it: discovery,
OpenAPI v2 and v3, CRUD with merge/strategic/JSON patches, ``/status`` and ``/scale``, label and
field selectors, paging, watches with resume and bookmarks, Tables for ``kubectl get``, and every
error as a ``metav1.Status``. The federation API (Postgres) and each simulated member cluster
(memory) are both this server; only their schemes, storages, authenticators and policies differ.

This module is the application: its routes, its start and stop, and the short way requests for
the resource paths take to their handlers (:mod:`federation.apimachinery.handlers`). It guarantees
that every path but ``/healthz``, ``/livez``, ``/readyz`` (and ``/metrics`` when open) needs an
authenticated principal, and that namespace terminations left by a previous process are resumed
when the app starts, unless the caller runs them elsewhere (``resume_terminations=False``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from federation.apimachinery import discovery
from federation.apimachinery.auth import Authenticator
from federation.apimachinery.errors import ApiError, not_found
from federation.apimachinery.handlers import ApiServer, ServerOptions
from federation.apimachinery.openapi import (
    openapi_v2_protobuf,
    openapi_v3_document,
    openapi_v3_index,
)
from federation.apimachinery.policy import KUBERNETES_RULES_ONLY, Policy
from federation.apimachinery.resources import Scheme
from federation.apimachinery.responses import error_response, json_response
from federation.apimachinery.schema import SchemaSet
from federation.apimachinery.storage import Storage

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
    min_request_timeout: float = 1800.0,
    on_startup: list[Lifespan] | None = None,
    on_shutdown: list[Lifespan] | None = None,
    ready: Callable[[], Awaitable[bool]] | None = None,
    policy: Policy = KUBERNETES_RULES_ONLY,
    resume_terminations: bool = True,
) -> FastAPI:
    """The ASGI app of one Kubernetes API server (see the module docstring).

    ``policy``: the server's own rules beyond Kubernetes' (none by default, as in a member
    cluster). ``resume_terminations``: finish, from this app, the namespace terminations a
    previous process left; a server of several processes asks one of them only.
    ``min_request_timeout``: a watch without ``timeoutSeconds`` ends after a random time between
    this and twice this many seconds, as kube-apiserver's ``--min-request-timeout``."""
    options = ServerOptions(
        title=title,
        version=version,
        metrics_open=metrics_open,
        bookmark_interval=bookmark_interval,
        min_request_timeout=min_request_timeout,
    )
    server = ApiServer(scheme, storage, schemas, authenticator, options, policy=policy)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup or []:
            await hook()
        if resume_terminations:
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
            return json_response(produce())
        except ApiError as err:
            return error_response(err)

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
            return error_response(err)
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
                return error_response(err)
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
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> Response:
        """What the router answers itself (a path no route matches, a method no route takes) is a
        ``metav1.Status`` too, as everything the Kubernetes apiserver answers."""
        reasons = type(ApiError(err.status_code, "", "")).REASONS  # the class of that code
        reason = reasons[0] if reasons else "Unknown"
        return error_response(ApiError(err.status_code, reason, str(err.detail)))

    return app
