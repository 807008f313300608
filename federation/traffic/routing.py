"""What a load balancer is told: per federated Service, one :class:`Route` with its regions' upstreams.

The controller computes these from the traffic weights; every provider receives the whole desired
state as a sequence of routes. The dataclasses are frozen and check themselves on construction, so a
provider never meets a negative weight, a port out of range, or two routes sharing a name or a port.
:func:`route_id` turns a route's name into an identifier safe in a URL path (Caddy's ``/id/<id>``) and
distinct for distinct names.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

_ID_SAFE = frozenset(string.ascii_letters + string.digits + "-")


@dataclass(frozen=True)
class Upstream:
    """One region's address for a Service: the member Service's ``status.loadBalancer.ingress[0]``."""

    cluster: str
    host: str
    port: int
    weight: int
    """At least 0; 0 sends nothing there (the region is Offline or has no ready pods)."""

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"upstream {self.cluster}: weight {self.weight} is negative")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"upstream {self.cluster}: port {self.port} is not in 1-65535")
        if not self.host:
            raise ValueError(f"upstream {self.cluster}: empty host")

    @property
    def dial(self) -> str:
        """``host:port``, with an IPv6 host in brackets."""
        return join_host_port(self.host, self.port)


@dataclass(frozen=True)
class Route:
    """A federated Service's global address: ``listen_port`` on the provider's address, spread over
    ``upstreams`` by weight."""

    name: str
    """``namespace/service``, unique among the routes applied together."""
    listen_port: int
    upstreams: tuple[Upstream, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a route needs a name")
        if not 1 <= self.listen_port <= 65535:
            raise ValueError(f"route {self.name}: listen port {self.listen_port} is not in 1-65535")
        dials = [u.dial for u in self.upstreams]
        if len(set(dials)) != len(dials):
            raise ValueError(f"route {self.name}: two upstreams share an address")

    @property
    def serving(self) -> tuple[Upstream, ...]:
        """The upstreams that get traffic (weight above 0), in the given order."""
        return tuple(u for u in self.upstreams if u.weight > 0)


def check_routes(routes: Sequence[Route]) -> dict[str, Route]:
    """The routes by name; ValueError when two share a name or a listen port."""
    by_name: dict[str, Route] = {}
    ports: dict[int, str] = {}
    for route in routes:
        if route.name in by_name:
            raise ValueError(f"two routes are named {route.name}")
        if route.listen_port in ports:
            raise ValueError(
                f"routes {ports[route.listen_port]} and {route.name} share port {route.listen_port}"
            )
        by_name[route.name] = route
        ports[route.listen_port] = route.name
    return by_name


def route_id(name: str) -> str:
    """A URL-path-safe id for the route named ``name``: letters, digits and ``-`` as they are, any
    other character as its code point in hex between two ``_`` (``default/web`` is
    ``route-default_2f_web``), so distinct names never share an id."""
    escaped = "".join(c if c in _ID_SAFE else f"_{ord(c):x}_" for c in name)
    return f"route-{escaped}"


def join_host_port(host: str, port: int) -> str:
    """``host:port``; ``[host]:port`` for an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
