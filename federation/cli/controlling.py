"""The controllers as ``fedctl up``'s companion: run beside the API server, in its event loop.

``federation.api`` may not import ``federation.controllers`` (siblings in the layers), so the CLI,
above both, builds :class:`Controllers` and hands it down through ``run_up``; the runtime starts it
once the server's storage is started, over that one storage, and cancels it when the server stops
(with several workers, in the first worker only). It is picklable: a worker process gets a copy.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from federation.settings import ControllerSettings, TrafficSettings

if TYPE_CHECKING:
    from federation.store import PostgresStorage

ANNOUNCEMENT = (
    "controllers: running beside the API server (cluster health, placement, propagation, status, "
    "traffic); --no-controllers or FEDERATION_CONTROLLERS=false turns them off"
)


@dataclass(frozen=True)
class Controllers:
    """Every controller of the federation, run over the API server's storage until cancelled."""

    settings: ControllerSettings
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    work_dir: Path | None = None
    """Where the traffic provider keeps its files (Caddy's configuration): ``<data dir>/traffic``."""
    description: str = ANNOUNCEMENT
    name: str = "the controllers"

    async def __call__(self, storage: PostgresStorage, /) -> None:
        from federation.controllers import ControllerManager, Leadership
        from federation.store import LeaseStore

        show_transitions()
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

        async def lead(fenced: PostgresStorage, holds: Callable[[], bool]) -> None:
            manager = ControllerManager(
                fenced, settings=self.settings, traffic=self.traffic, work_dir=self.work_dir, may_write=holds
            )
            await manager.run()

        # Elected like federation-controller replicas: a fedctl up beside them leads or stands by.
        leadership = Leadership(LeaseStore(storage.engine), storage, duration=self.settings.lease_duration)
        await leadership.run(lead)


def show_transitions() -> None:
    """The controllers' INFO lines (a cluster Ready or Offline, drift put back) on stderr, as
    ``federation-controller`` prints them, unless logging was set up otherwise."""
    logger = logging.getLogger("federation.controllers")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
