"""Fixtures of the controllers' integration tests: simulated members and the controllers over them.

``sim`` is three simulated clusters ``a``, ``b``, ``c`` (pods ready 0.2 s after scheduling);
``manager`` runs the controllers over a fresh federation (``federation_storage``) with ``sim``'s
clusters registered and Ready. A test module changes them by overriding ``controller_settings`` or
``sim`` with fixtures of its own names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from federation.controllers import ControllerManager
from federation.settings import ControllerSettings
from federation.sim import Simulator
from federation.store import PostgresStorage
from tests.federation_support import controllers_over, fast_settings


@pytest.fixture
def controller_settings() -> ControllerSettings:
    return fast_settings()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator(["a", "b", "c"], kubeconfig=tmp_path / "sim.kubeconfig", start_delay=0.2) as s:
        yield s


@pytest.fixture
async def manager(
    federation_storage: PostgresStorage, sim: Simulator, controller_settings: ControllerSettings
) -> AsyncIterator[ControllerManager]:
    async with controllers_over(federation_storage, sim, settings=controller_settings) as m:
        yield m
