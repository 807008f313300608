"""The federation's own rule: its credentials namespace belongs to admins, and stays.

``federation-system`` (:data:`~federation.apis.SYSTEM_NAMESPACE`) holds the Secrets with which the
federation reaches its member clusters. :class:`SystemNamespacePolicy` is the
:class:`~federation.apimachinery.Policy` the federation API server passes to ``build_app``, and it
guarantees:

* only admins read or write anything in it, or the namespace itself (anyone may read its Events,
  which say what the federation did, not what it holds);
* what is in it is left out of every cluster-wide list, watch and delete by selector for a viewer or
  an editor, so ``kubectl get secrets -A`` shows them nothing of it;
* nobody, admins included, deletes the namespace (403, as Kubernetes refuses to delete ``default``).

A member cluster has no such rule: the simulator passes no policy, and a namespace named
``federation-system`` there is a namespace like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from federation.apimachinery import Forbidden, Obj, Principal, ResourceType
from federation.apis import SYSTEM_NAMESPACE

READ_VERBS = frozenset({"get", "list", "watch"})


def _is_namespaces(rt: ResourceType) -> bool:
    return rt.group == "" and rt.plural == "namespaces"


def _in_system_namespace(obj: Obj) -> bool:
    return (obj.get("metadata") or {}).get("namespace") == SYSTEM_NAMESPACE


class SystemNamespacePolicy:
    """The federation API server's :class:`~federation.apimachinery.Policy` (see the module docstring)."""

    NAME: ClassVar[str] = "federation-system"

    def authorize(
        self, principal: Principal, verb: str, *, rt: ResourceType, namespace: str | None, name: str | None
    ) -> None:
        if principal.role == "admin":
            return
        touches_system = namespace == SYSTEM_NAMESPACE or (_is_namespaces(rt) and name == SYSTEM_NAMESPACE)
        if touches_system and not (rt.plural == "events" and verb in READ_VERBS):
            target = f'{rt.plural} in namespace "{namespace}"' if namespace else rt.plural
            raise Forbidden.make(
                f'User "{principal.name}" cannot {verb} resource {target}: requires role admin'
            )

    def hidden(self, principal: Principal, rt: ResourceType) -> Callable[[Obj], bool] | None:
        if principal.role == "admin" or not rt.namespaced:
            return None
        return _in_system_namespace

    def admit_delete(self, rt: ResourceType, obj: Obj) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if _is_namespaces(rt) and name == SYSTEM_NAMESPACE:
            raise Forbidden.make(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
