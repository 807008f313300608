"""The load-balancer provider interface the traffic controller programs, and the provider ``none``.

A provider receives the whole desired state (every route) on each ``apply``, which is idempotent: the
controller may call it after every reconcile and on every resync. ``address`` is the IP its global
addresses listen on, which the controller writes into the federated Service's status; a provider
that listens nowhere (``none``) has ``address == ""``, and the controller then writes no global
address. :func:`make_provider` picks the provider the settings name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

from federation.settings import TrafficSettings
from federation.traffic.routing import Route, check_routes


class Provider(Protocol):
    """A global load balancer. ``start`` before ``apply``; ``stop`` leaves nothing running."""

    NAME: ClassVar[str]
    address: str

    async def start(self) -> None: ...

    async def apply(self, routes: Sequence[Route]) -> None:
        """Make the balancer serve exactly ``routes``; what did not change is left alone, and a weight
        change is live (no client connection dropped)."""
        ...

    async def stop(self) -> None: ...

    def healthy(self) -> bool: ...


class NoProvider:
    """Provider ``none``: an external load balancer reads the weights from the API and the metrics.
    ``apply`` checks and records the routes (``routes``), and programs nothing."""

    NAME: ClassVar[str] = "none"

    def __init__(self) -> None:
        self.address = ""
        self.routes: tuple[Route, ...] = ()

    async def start(self) -> None:
        return None

    async def apply(self, routes: Sequence[Route]) -> None:
        check_routes(routes)
        self.routes = tuple(routes)

    async def stop(self) -> None:
        return None

    def healthy(self) -> bool:
        return True


def make_provider(settings: TrafficSettings, *, work_dir: Path) -> Provider:
    """The provider ``settings.traffic_provider`` names; Caddy keeps its files in ``work_dir``."""
    if settings.traffic_provider == "none":
        return NoProvider()
    from federation.traffic.caddy import CaddyProvider

    return CaddyProvider(settings, work_dir=work_dir)
