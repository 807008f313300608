"""The federation's client of member clusters: the only layer that imports the ``kubernetes`` client.

Controllers reach a member through the names below and nothing else: :class:`Credentials` read
from a Cluster's Secret, a synchronous :class:`MemberClient` over the official client (pooled
connections, a timeout on every call, failures translated into the project's ``ApiError``
hierarchy, :class:`MemberUnreachable` when there was no answer at all), its async face
:class:`Member` (per-member threads, so a dead member holds up nobody else) and
:class:`MemberSource` for informers over what the federation manages in the member.

The names load on first use (PEP 562), as in ``federation.apimachinery``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from federation.apimachinery import lazy_exports

if TYPE_CHECKING:
    from federation.members.capacity import Capacity
    from federation.members.clients import MemberClient, ProbeResult, Timeouts
    from federation.members.credentials import Credentials, CredentialsError, credentials_from_secret
    from federation.members.failures import MemberTimeout, MemberUnreachable
    from federation.members.member import Member
    from federation.members.sources import MemberSource
    from federation.members.streams import WatchStream

_WHERE = {
    "capacity": ("Capacity",),
    "clients": ("MemberClient", "ProbeResult", "Timeouts"),
    "credentials": ("Credentials", "CredentialsError", "credentials_from_secret"),
    "failures": ("MemberTimeout", "MemberUnreachable"),
    "member": ("Member",),
    "sources": ("MemberSource",),
    "streams": ("WatchStream",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "Capacity",
    "Credentials",
    "CredentialsError",
    "Member",
    "MemberClient",
    "MemberSource",
    "MemberTimeout",
    "MemberUnreachable",
    "ProbeResult",
    "Timeouts",
    "WatchStream",
    "credentials_from_secret",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
