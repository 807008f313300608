"""The Kubernetes API machinery both servers share: the federation API (over Postgres) and each
simulated member cluster (over memory). See ``server.build_app``.

The names below are the public surface. They load on first use (PEP 562), so that importing a
small module of this package (``auth``, ``errors``) does not pull in FastAPI and the schemas, and
``fedctl`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from federation.apimachinery.exports import lazy_exports

if TYPE_CHECKING:
    from federation.apimachinery.auth import (
        ROLES,
        Authenticator,
        Principal,
        Role,
        authorize,
        static_token_authenticator,
    )
    from federation.apimachinery.certificates import ensure_ca_and_serving_cert, generate_bundle
    from federation.apimachinery.collecting import (
        YOUNG_THRESHOLD,
        collect_and_freeze,
        pace_collector,
        paced_collector,
    )
    from federation.apimachinery.errors import (
        AlreadyExists,
        ApiError,
        BadRequest,
        Cause,
        Conflict,
        Forbidden,
        Gone,
        InternalError,
        Invalid,
        NotFound,
        Timeout,
        TooManyRequests,
        Unauthorized,
        Unavailable,
        already_exists,
        bad_request,
        conflict,
        internal,
        invalid,
        not_found,
        unavailable,
    )
    from federation.apimachinery.events import EventRecorder, namespace_alive
    from federation.apimachinery.exports import lazy_exports
    from federation.apimachinery.files import write_atomically
    from federation.apimachinery.informers import Handlers, Informer, Listing, Source, StorageSource
    from federation.apimachinery.kinds import (
        CORE_KINDS,
        EVENTS,
        NAMESPACES,
        REPLICASETS,
        SECRETS,
        default_pod_template_spec,
    )
    from federation.apimachinery.kubeconfig import (
        Kubeconfig,
        KubeconfigError,
        KubeContext,
        read_kubeconfig,
        write_kubeconfig,
    )
    from federation.apimachinery.memory import MemoryStorage
    from federation.apimachinery.objects import (
        copy_json,
        dig,
        dump_json,
        labels_of,
        meta,
        name_of,
        namespace_of,
        new_uid,
        now_rfc3339,
        parse_rfc3339,
        rv_of,
    )
    from federation.apimachinery.openapi import openapi_v3_document
    from federation.apimachinery.policy import KUBERNETES_RULES_ONLY, Policy
    from federation.apimachinery.queueing import (
        PermanentError,
        RateLimiter,
        Result,
        TemporaryError,
        WorkQueue,
        feed,
    )
    from federation.apimachinery.registry import Registry, WriteOptions
    from federation.apimachinery.resources import Column, Obj, ResourceType, Scheme, Strategy
    from federation.apimachinery.schema import SchemaSet
    from federation.apimachinery.selectors import LabelSelector, label_selector_from_object
    from federation.apimachinery.server import build_app
    from federation.apimachinery.services import (
        SERVICES,
        ServiceStrategy,
        service_external_ip,
        service_ports,
        service_ports_cell,
        service_selector_cell,
    )
    from federation.apimachinery.sockets import IDLE_TIMEOUT, bind_tcp
    from federation.apimachinery.storage import EventType, ListPage, ObjectFilter, Storage, WatchEvent
    from federation.apimachinery.tables import AGE
    from federation.apimachinery.watchcache import Change, WatchCache

_WHERE = {
    "auth": ("ROLES", "Authenticator", "Principal", "Role", "authorize", "static_token_authenticator"),
    "certificates": ("ensure_ca_and_serving_cert", "generate_bundle"),
    "errors": (
        "AlreadyExists",
        "ApiError",
        "BadRequest",
        "Cause",
        "Conflict",
        "Forbidden",
        "Gone",
        "InternalError",
        "Invalid",
        "NotFound",
        "Timeout",
        "TooManyRequests",
        "Unauthorized",
        "Unavailable",
        "already_exists",
        "bad_request",
        "conflict",
        "internal",
        "invalid",
        "not_found",
        "unavailable",
    ),
    "events": ("EventRecorder", "namespace_alive"),
    "exports": ("lazy_exports",),
    "files": ("write_atomically",),
    "informers": ("Handlers", "Informer", "Listing", "Source", "StorageSource"),
    "kinds": ("CORE_KINDS", "EVENTS", "NAMESPACES", "REPLICASETS", "SECRETS", "default_pod_template_spec"),
    "kubeconfig": ("KubeContext", "Kubeconfig", "KubeconfigError", "read_kubeconfig", "write_kubeconfig"),
    "memory": ("MemoryStorage",),
    "objects": (
        "copy_json",
        "dig",
        "dump_json",
        "labels_of",
        "meta",
        "name_of",
        "namespace_of",
        "new_uid",
        "now_rfc3339",
        "parse_rfc3339",
        "rv_of",
    ),
    "policy": ("KUBERNETES_RULES_ONLY", "Policy"),
    "queueing": ("PermanentError", "RateLimiter", "Result", "TemporaryError", "WorkQueue", "feed"),
    "registry": ("Registry", "WriteOptions"),
    "resources": ("Column", "Obj", "ResourceType", "Scheme", "Strategy"),
    "openapi": ("openapi_v3_document",),
    "schema": ("SchemaSet",),
    "selectors": ("LabelSelector", "label_selector_from_object"),
    "services": (
        "SERVICES",
        "ServiceStrategy",
        "service_external_ip",
        "service_ports",
        "service_ports_cell",
        "service_selector_cell",
    ),
    "server": ("build_app",),
    "sockets": ("IDLE_TIMEOUT", "bind_tcp"),
    "collecting": ("YOUNG_THRESHOLD", "collect_and_freeze", "pace_collector", "paced_collector"),
    "storage": ("EventType", "ListPage", "ObjectFilter", "Storage", "WatchEvent"),
    "tables": ("AGE",),
    "watchcache": ("Change", "WatchCache"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "AGE",
    "CORE_KINDS",
    "EVENTS",
    "IDLE_TIMEOUT",
    "KUBERNETES_RULES_ONLY",
    "NAMESPACES",
    "REPLICASETS",
    "ROLES",
    "SECRETS",
    "SERVICES",
    "YOUNG_THRESHOLD",
    "AlreadyExists",
    "ApiError",
    "Authenticator",
    "BadRequest",
    "Cause",
    "Change",
    "Column",
    "Conflict",
    "EventRecorder",
    "EventType",
    "Forbidden",
    "Gone",
    "Handlers",
    "Informer",
    "InternalError",
    "Invalid",
    "KubeContext",
    "Kubeconfig",
    "KubeconfigError",
    "LabelSelector",
    "ListPage",
    "Listing",
    "MemoryStorage",
    "NotFound",
    "Obj",
    "ObjectFilter",
    "PermanentError",
    "Policy",
    "Principal",
    "RateLimiter",
    "Registry",
    "ResourceType",
    "Result",
    "Role",
    "SchemaSet",
    "Scheme",
    "ServiceStrategy",
    "Source",
    "Storage",
    "StorageSource",
    "Strategy",
    "TemporaryError",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "WatchCache",
    "WatchEvent",
    "WorkQueue",
    "WriteOptions",
    "already_exists",
    "authorize",
    "bad_request",
    "bind_tcp",
    "build_app",
    "collect_and_freeze",
    "conflict",
    "copy_json",
    "default_pod_template_spec",
    "dig",
    "dump_json",
    "ensure_ca_and_serving_cert",
    "feed",
    "generate_bundle",
    "internal",
    "invalid",
    "label_selector_from_object",
    "labels_of",
    "lazy_exports",
    "meta",
    "name_of",
    "namespace_alive",
    "namespace_of",
    "new_uid",
    "not_found",
    "now_rfc3339",
    "openapi_v3_document",
    "pace_collector",
    "paced_collector",
    "parse_rfc3339",
    "read_kubeconfig",
    "rv_of",
    "service_external_ip",
    "service_ports",
    "service_ports_cell",
    "service_selector_cell",
    "static_token_authenticator",
    "unavailable",
    "write_atomically",
    "write_kubeconfig",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
