"""The handlers of the resource paths: one request in, one Kubernetes answer out.

:class:`ApiServer` takes a request for ``/api/...`` or ``/apis/...`` through the steps the
Kubernetes apiserver takes: resolve the path (:mod:`federation.apimachinery.requests`),
authenticate, authorize (the server's :class:`~federation.apimachinery.policy.Policy`, then the
role), then get, list, watch (:mod:`federation.apimachinery.watchstream`), create, update, patch
or delete through the :class:`~federation.apimachinery.registry.Registry`. What it guarantees:

* every failure is answered as a ``metav1.Status`` (an unexpected one as a 500, logged once with
  the request);
* what a principal may not see is never sent: Secret data is redacted for a viewer, and what the
  policy hides is left out of lists, watches and deletes by selector;
* a delete by selector checks every item before it deletes any;
* each request is counted in ``federation_api_requests_total{verb,resource,code}`` and, but for
  watches, timed in ``federation_api_request_duration_seconds``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from prometheus_client import Counter, Histogram

from federation import metrics
from federation.apimachinery import discovery, requests, tables
from federation.apimachinery.auth import Authenticator, Principal, authorize
from federation.apimachinery.errors import (
    ApiError,
    NotFound,
    internal,
    method_not_allowed,
    not_found,
    unauthorized,
)
from federation.apimachinery.objects import name_of, namespace_of
from federation.apimachinery.policy import KUBERNETES_RULES_ONLY, Policy
from federation.apimachinery.registry import Registry
from federation.apimachinery.requests import Target
from federation.apimachinery.resources import Obj, ResourceType, Scheme
from federation.apimachinery.responses import deleted, error_response, json_response
from federation.apimachinery.scaling import scale_of
from federation.apimachinery.schema import SchemaSet
from federation.apimachinery.storage import ObjectFilter, Storage
from federation.apimachinery.watchstream import watch_response

log = logging.getLogger(__name__)
MAX_LIST_LIMIT = 2**31 - 1
SUBRESOURCE_VERBS = frozenset({"get", "update", "patch"})
"""What ``/status`` and ``/scale`` take, as in Kubernetes; any other verb there is a 405."""


@dataclass(frozen=True)
class ServerOptions:
    """What ``build_app`` was told: names, whether ``/metrics`` is open, watch timing."""

    title: str
    version: dict[str, str]
    metrics_open: bool = False
    bookmark_interval: float = 5.0
    min_request_timeout: float = 1800.0
    """kube-apiserver's ``--min-request-timeout``: a watch without ``timeoutSeconds`` ends after a
    random time between this and twice this (:func:`~federation.apimachinery.watchstream.watch_seconds`)."""


class ApiServer:
    """The resource paths of one server: its scheme, storage, registry, authenticator and policy."""

    def __init__(
        self,
        scheme: Scheme,
        storage: Storage,
        schemas: SchemaSet,
        authenticator: Authenticator,
        options: ServerOptions,
        *,
        policy: Policy = KUBERNETES_RULES_ONLY,
    ) -> None:
        self.scheme = scheme
        self.storage = storage
        self.schemas = schemas
        self.policy = policy
        self.registry = Registry(scheme, storage, schemas, policy=policy)
        self.authenticate = authenticator
        self.options = options
        self._metrics: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    # ------------------------------------------------------------------ who may do what

    async def principal(self, request: Request) -> Principal:
        found = await self.authenticate(requests.bearer_token(request))
        if found is None:
            raise unauthorized()
        return found

    def authorize(
        self, principal: Principal, verb: str, rt: ResourceType, *, namespace: str | None, name: str | None
    ) -> None:
        """403 unless both the server's policy and the principal's role allow it."""
        self.policy.authorize(principal, verb, rt=rt, namespace=namespace, name=name)
        authorize(
            principal, verb, plural=rt.plural, namespace=namespace, name=name, admin_writes=rt.admin_writes
        )

    def visible(self, principal: Principal, rt: ResourceType, obj: Obj) -> Obj:
        if rt.sealed_fields and not principal.sees_secret_data:
            return rt.strategy.redact(obj)
        return obj

    def selection(
        self, rt: ResourceType, request: Request, principal: Principal
    ) -> tuple[ObjectFilter | None, dict[str, str]]:
        """The filter of a list, watch or deletecollection: its selectors, and nothing the policy
        hides from ``principal`` (a cluster-wide request names no namespace for the check to refuse)."""
        return requests.selection(rt, request, self.policy.hidden(principal, rt))

    # ------------------------------------------------------------------ handlers

    async def handle(self, request: Request, prefix: str, path: str) -> Response:
        started = time.perf_counter()
        verb = request.method.lower()
        resource = "unknown"
        try:
            resolved = requests.resolve(self.scheme, prefix, path)
            principal = await self.principal(request)
            if resolved is None:
                raise not_found("", path.strip("/") or prefix)
            if isinstance(resolved, tuple):
                resource = "discovery"
                found = discovery.resource_list(self.scheme, *resolved)
                if found is None:
                    group, version = resolved
                    raise not_found("", f"{group}/{version}" if group else version)
                response = json_response(found)
            else:
                resource = resolved.rt.plural
                verb = requests.verb_of(request, resolved)
                if resolved.subresource:
                    if resolved.subresource not in resolved.rt.subresources:
                        raise not_found(resolved.rt.plural, resolved.subresource, resolved.rt.group)
                    resource += f"/{resolved.subresource}"  # a known one only: bounded label values
                    if verb not in SUBRESOURCE_VERBS:
                        raise method_not_allowed(f"{verb} is not supported on {resource}")
                self.authorize(principal, verb, resolved.rt, namespace=resolved.namespace, name=resolved.name)
                response = await self.dispatch(request, verb, resolved, principal)
        except ApiError as err:
            response = error_response(err)
        except Exception:
            log.exception("%s %s/%s failed", request.method, prefix, path)
            response = error_response(internal("an internal error occurred; see the server log"))
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
                return json_response(scale_of(obj))
            obj = self.visible(principal, rt, obj)
            if wants_table:
                return json_response(
                    tables.table(rt, [obj], include=request.query_params.get("includeObject"))
                )
            return json_response(obj)
        if verb == "list":
            return await self.list_objects(request, t, principal, wants_table)
        if verb == "watch":
            match, _ = self.selection(rt, request, principal)
            return watch_response(
                request,
                t,
                storage=self.storage,
                match=match,
                show=lambda obj: self.visible(principal, rt, obj),
                wants_table=wants_table,
                bookmark_interval=self.options.bookmark_interval,
                min_request_timeout=self.options.min_request_timeout,
            )
        if verb == "create":
            opts = requests.write_options(request)
            body, warnings = await requests.object_body(request, opts)
            outcome = await self.registry.create(rt, ns, body, opts)
            return json_response(
                self.visible(principal, rt, outcome.object), 201, tuple(warnings) + outcome.warnings
            )
        if verb == "update":
            assert t.name is not None
            opts = requests.write_options(request)
            body, warnings = await requests.object_body(request, opts)
            if t.subresource == "scale":
                outcome = await self.registry.update_scale(rt, ns, t.name, body, opts)
            else:
                outcome = await self.registry.update(rt, ns, t.name, body, opts, subresource=t.subresource)
            return json_response(
                self.visible(principal, rt, outcome.object), 200, tuple(warnings) + outcome.warnings
            )
        if verb == "patch":
            assert t.name is not None
            patch_type = requests.patch_type_of(request)
            opts = requests.write_options(request)
            patch, warnings = await requests.json_body(request, opts)
            outcome = await self.registry.patch(
                rt, ns, t.name, patch_type, patch, opts, subresource=t.subresource
            )
            return json_response(
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
        # No page holds more than a storage can count; larger asks for everything (and stays in SQL's bigint).
        limit = min(requests.query_int(request, "limit", minimum=0) or 0, MAX_LIST_LIMIT)
        after = requests.decode_continue(q.get("continue") or "")
        page = await self.storage.list(
            rt,
            t.namespace if rt.namespaced else None,
            match=match,
            label_equals=equalities or None,
            limit=limit,
            after=after,
        )
        items = [self.visible(principal, rt, o) for o in page.items]
        list_meta: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_key is not None:
            list_meta["continue"] = requests.encode_continue(page.resource_version, page.continue_key)
        if wants_table:
            body = tables.table(rt, items, include=q.get("includeObject"))
            body["metadata"] = list_meta
            return json_response(body)
        for item in items:
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", rt.kind)
        return json_response(
            {"kind": rt.list_kind_name, "apiVersion": rt.api_version, "metadata": list_meta, "items": items}
        )

    async def delete(self, request: Request, t: Target, principal: Principal) -> Response:
        assert t.name is not None
        options = await requests.delete_options(request, self.schemas)
        opts = requests.write_options(request, options.get("dryRun"))
        outcome = await self.registry.delete(
            t.rt, t.namespace or "", t.name, preconditions=options.get("preconditions"), dry_run=opts.dry_run
        )
        if outcome.deleted:
            return deleted(t.rt, outcome.object)
        return json_response(self.visible(principal, t.rt, outcome.object), 202 if not opts.dry_run else 200)

    async def delete_collection(self, request: Request, t: Target, principal: Principal) -> Response:
        rt = t.rt
        match, equalities = self.selection(rt, request, principal)
        options = await requests.delete_options(request, self.schemas)
        opts = requests.write_options(request, options.get("dryRun"))
        page = await self.storage.list(rt, t.namespace, match=match, label_equals=equalities or None)
        for obj in page.items:  # every item is allowed, or nothing is deleted
            self.authorize(principal, "delete", rt, namespace=t.namespace, name=name_of(obj))
        removed: list[Obj] = []
        for obj in page.items:
            try:
                outcome = await self.registry.delete(
                    rt, namespace_of(obj), name_of(obj), dry_run=opts.dry_run
                )
            except NotFound:
                continue
            removed.append(self.visible(principal, rt, outcome.object))
        return json_response(
            {
                "kind": rt.list_kind_name,
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(await self.storage.current_version())},
                "items": removed,
            }
        )
