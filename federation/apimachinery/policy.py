"""The hook through which a server adds rules of its own to Kubernetes' rules.

The machinery enforces only what Kubernetes itself enforces: the roles
(:func:`~federation.apimachinery.auth.authorize`) and the namespace lifecycle (``default``,
``kube-system`` and ``kube-public`` may not be deleted; see
:mod:`federation.apimachinery.namespaces`). A server with rules beyond those (the federation keeps
its credentials namespace to admins and protects it) passes a :class:`Policy` to ``build_app``,
as it passes its authenticator; a simulated member cluster passes none and, like a real cluster,
has no such rule. A policy plays the parts of a Kubernetes authorizer (who may do what, and what a
cluster-wide list or watch leaves out for them) and of a validating admission plugin on delete.

Guarantees: every request is put to :meth:`Policy.authorize` before the role check, and every
item of a delete-by-selector before anything is deleted; :meth:`Policy.hidden` applies to lists,
watches and delete-by-selector alike; :meth:`Policy.admit_delete` runs before a delete is
written, dry run or not, so a refused delete changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

from federation.apimachinery.auth import Principal
from federation.apimachinery.resources import Obj, ResourceType


class Policy(Protocol):
    """A server's own rules (see the module docstring). Refusals raise ``Forbidden``."""

    NAME: ClassVar[str]

    def authorize(
        self, principal: Principal, verb: str, *, rt: ResourceType, namespace: str | None, name: str | None
    ) -> None:
        """Raise ``Forbidden`` when ``principal`` may not do ``verb`` on ``rt`` (in ``namespace``,
        named ``name``), whatever its role allows."""
        ...

    def hidden(self, principal: Principal, rt: ResourceType) -> Callable[[Obj], bool] | None:
        """Which objects of ``rt`` a request naming no namespace leaves out for ``principal``
        (None: none)."""
        ...

    def admit_delete(self, rt: ResourceType, obj: Obj) -> None:
        """Raise ``Forbidden`` when ``obj`` may not be deleted, by anyone."""
        ...


class KubernetesRulesOnly:
    """No rule of its own: what a Kubernetes cluster (a simulated member) has."""

    NAME: ClassVar[str] = "kubernetes"

    def authorize(
        self, principal: Principal, verb: str, *, rt: ResourceType, namespace: str | None, name: str | None
    ) -> None:
        return None

    def hidden(self, principal: Principal, rt: ResourceType) -> Callable[[Obj], bool] | None:
        return None

    def admit_delete(self, rt: ResourceType, obj: Obj) -> None:
        return None


KUBERNETES_RULES_ONLY: Policy = KubernetesRulesOnly()
