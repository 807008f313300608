"""Who is calling, and what their role lets them do.

Both servers authenticate bearer tokens; the federation checks them against hashed tokens in
Postgres, a simulated cluster against its one token. Authorization is by role, coarse on purpose:

* ``viewer`` reads everything except Secret data (Secrets are returned without ``data``) and never
  writes;
* ``editor`` reads and writes every kind, except the kinds only admins write (``admin_writes``);
* ``admin`` does everything.

A server's own rules on top of the roles (the federation's credentials namespace, say) are its
:class:`~federation.apimachinery.policy.Policy`, not this module's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from federation.apimachinery.errors import forbidden

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")

READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @property
    def sees_secret_data(self) -> bool:
        return self.role != "viewer"


Authenticator = Callable[[str | None], Awaitable[Principal | None]]
"""Maps a bearer token (None when absent) to a principal, or None when it is not valid."""


def authorize(
    principal: Principal,
    verb: str,
    *,
    plural: str,
    namespace: str | None,
    name: str | None = None,
    admin_writes: bool = False,
) -> None:
    """Raise 403 Forbidden when ``principal`` may not do ``verb`` on the resource.

    ``admin_writes``: only admins write this kind (Clusters: a Cluster names a credentials Secret
    that the federation will present to the Cluster's server)."""
    if principal.role == "admin":
        return
    if verb in READ_VERBS:
        return
    target = f'{plural} in namespace "{namespace}"' if namespace else plural
    if principal.role == "viewer":
        raise forbidden(f'User "{principal.name}" cannot {verb} resource {target}: role viewer is read-only')
    if admin_writes:
        raise forbidden(f'User "{principal.name}" cannot {verb} resource {target}: requires role admin')


def static_token_authenticator(token: str, principal: Principal) -> Authenticator:
    """One fixed token (a simulated cluster's), compared in constant time."""
    import hmac

    async def authenticate(presented: str | None) -> Principal | None:
        if presented is not None and hmac.compare_digest(presented.encode(), token.encode()):
            return principal
        return None

    return authenticate
