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
    )
    from federation.apimachinery.certificates import ensure_ca_and_serving_cert
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
    )
    from federation.apimachinery.events import EventRecorder
    from federation.apimachinery.files import write_atomically
    from federation.apimachinery.informers import (
        Handlers,
        Informer,
        Listing,
        Source,
        StorageSource,
    )
    from federation.apimachinery.kinds import CORE_KINDS, EVENTS, NAMESPACES, REPLICASETS, SECRETS
    from federation.apimachinery.kubeconfig import Kubeconfig, KubeContext, write_kubeconfig
    from federation.apimachinery.memory import MemoryStorage
    from federation.apimachinery.objects import copy_json, meta, now_rfc3339
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
    from federation.apimachinery.server import build_app
    from federation.apimachinery.sockets import bind_tcp
    from federation.apimachinery.storage import ListPage, Storage, WatchEvent
    from federation.apimachinery.watchcache import Change, WatchCache

_WHERE = {
    "auth": ("ROLES", "Authenticator", "Principal", "Role", "authorize"),
    "certificates": ("ensure_ca_and_serving_cert",),
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
    ),
    "events": ("EventRecorder",),
    "exports": ("lazy_exports",),
    "files": ("write_atomically",),
    "informers": ("Handlers", "Informer", "Listing", "Source", "StorageSource"),
    "kinds": ("CORE_KINDS", "EVENTS", "NAMESPACES", "REPLICASETS", "SECRETS"),
    "kubeconfig": ("KubeContext", "Kubeconfig", "write_kubeconfig"),
    "memory": ("MemoryStorage",),
    "objects": ("copy_json", "meta", "now_rfc3339"),
    "policy": ("KUBERNETES_RULES_ONLY", "Policy"),
    "queueing": ("PermanentError", "RateLimiter", "Result", "TemporaryError", "WorkQueue", "feed"),
    "registry": ("Registry", "WriteOptions"),
    "resources": ("Column", "Obj", "ResourceType", "Scheme", "Strategy"),
    "schema": ("SchemaSet",),
    "server": ("build_app",),
    "sockets": ("bind_tcp",),
    "storage": ("ListPage", "Storage", "WatchEvent"),
    "watchcache": ("Change", "WatchCache"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "CORE_KINDS",
    "EVENTS",
    "KUBERNETES_RULES_ONLY",
    "NAMESPACES",
    "REPLICASETS",
    "ROLES",
    "SECRETS",
    "AlreadyExists",
    "ApiError",
    "Authenticator",
    "BadRequest",
    "Cause",
    "Change",
    "Column",
    "Conflict",
    "EventRecorder",
    "Forbidden",
    "Gone",
    "Handlers",
    "Informer",
    "InternalError",
    "Invalid",
    "KubeContext",
    "Kubeconfig",
    "ListPage",
    "Listing",
    "MemoryStorage",
    "NotFound",
    "Obj",
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
    "authorize",
    "bind_tcp",
    "build_app",
    "copy_json",
    "ensure_ca_and_serving_cert",
    "feed",
    "lazy_exports",
    "meta",
    "now_rfc3339",
    "write_atomically",
    "write_kubeconfig",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
