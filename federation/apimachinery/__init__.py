"""The Kubernetes API machinery both servers share: the federation API (over Postgres) and each
simulated member cluster (over memory). See ``server.build_app``."""

from federation.apimachinery.auth import ROLES, SYSTEM_NAMESPACE, Authenticator, Principal, Role, authorize
from federation.apimachinery.errors import ApiError, Cause
from federation.apimachinery.kinds import CORE_KINDS, EVENTS, NAMESPACES, REPLICASETS, SECRETS
from federation.apimachinery.memory import MemoryStorage
from federation.apimachinery.objects import copy_json, meta, now_rfc3339
from federation.apimachinery.registry import Registry, WriteOptions
from federation.apimachinery.resources import Column, Obj, ResourceType, Scheme, Strategy
from federation.apimachinery.schema import SchemaSet
from federation.apimachinery.server import build_app
from federation.apimachinery.storage import ListPage, Storage, WatchEvent
from federation.apimachinery.watchcache import Change, WatchCache

__all__ = [
    "CORE_KINDS",
    "EVENTS",
    "NAMESPACES",
    "REPLICASETS",
    "ROLES",
    "SECRETS",
    "SYSTEM_NAMESPACE",
    "ApiError",
    "Authenticator",
    "Cause",
    "Change",
    "Column",
    "ListPage",
    "MemoryStorage",
    "Obj",
    "Principal",
    "Registry",
    "ResourceType",
    "Role",
    "SchemaSet",
    "Scheme",
    "Storage",
    "Strategy",
    "WatchCache",
    "WatchEvent",
    "WriteOptions",
    "authorize",
    "build_app",
    "copy_json",
    "meta",
    "now_rfc3339",
]
