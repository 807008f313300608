"""The global load balancer's providers: what the traffic controller programs (DESIGN.md "Traffic").

The controller computes, per federated Service of type LoadBalancer, a :class:`Route` (a listen port
and one :class:`Upstream` per region, weighted by the traffic weights) and hands the whole set to a
:class:`Provider` on every reconcile. :func:`make_provider` builds the one the settings name:
:class:`CaddyProvider`, the embedded default (two supervised Caddy processes, admin APIs on loopback,
weights changed live), or :class:`NoProvider` (``none``: an external balancer reads the API).

The names load on first use (PEP 562), as in ``federation.apimachinery``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from federation.apimachinery import lazy_exports

if TYPE_CHECKING:
    from federation.traffic.caddy import CaddyProvider, drain_limit
    from federation.traffic.caddyconfig import balancer_config, edge_config
    from federation.traffic.caddyprocess import CaddyError, CaddyProcess, caddy_binary
    from federation.traffic.providers import NoProvider, Provider, make_provider
    from federation.traffic.routing import Route, Upstream, route_id

_WHERE = {
    "caddy": ("CaddyProvider", "drain_limit"),
    "caddyconfig": ("balancer_config", "edge_config"),
    "caddyprocess": ("CaddyError", "CaddyProcess", "caddy_binary"),
    "providers": ("NoProvider", "Provider", "make_provider"),
    "routing": ("Route", "Upstream", "route_id"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "CaddyError",
    "CaddyProcess",
    "CaddyProvider",
    "NoProvider",
    "Provider",
    "Route",
    "Upstream",
    "balancer_config",
    "caddy_binary",
    "drain_limit",
    "edge_config",
    "make_provider",
    "route_id",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
