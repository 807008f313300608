"""One dead member holds nobody up: with a cluster black-holed (and still believed Ready, so every call
to it waits for its timeout), new Secrets reach the other clusters as fast as with every cluster well.

Real Postgres, three simulated clusters over HTTPS through the official client, the controllers
running in the test's event loop. The failure threshold is raised so that the black-holed cluster is
never marked Offline: propagation keeps trying it, and only its own queue pays the timeouts.
"""

from __future__ import annotations

import time

import pytest

from federation.apimachinery import NAMESPACES, SECRETS, WriteOptions
from federation.controllers import ControllerManager
from federation.settings import ControllerSettings
from federation.sim import Simulator
from tests.federation_support import eventually, fast_settings, member_get
from tests.integration.test_controllers_secrets import secret

pytestmark = pytest.mark.anyio

COUNT = 20


@pytest.fixture
def controller_settings() -> ControllerSettings:
    return fast_settings(failure_threshold=1000)


async def propagate(manager: ControllerManager, sim: Simulator, prefix: str, clusters: list[str]) -> float:
    """Seconds from creating COUNT Secrets to all of them being in each of ``clusters``."""
    started = time.monotonic()
    for i in range(COUNT):
        await manager.registry.create(SECRETS, "shop", secret(f"{prefix}-{i}", prefix), WriteOptions())

    async def arrived() -> bool:
        return all(
            member_get(sim, c, SECRETS, "shop", f"{prefix}-{i}") is not None
            for c in clusters
            for i in range(COUNT)
        )

    await eventually(arrived, within=30, interval=0.05, what=f"{COUNT} Secrets in {clusters}")
    return time.monotonic() - started


async def test_a_black_holed_member_does_not_slow_propagation_to_the_others(
    manager: ControllerManager, sim: Simulator
) -> None:
    await manager.registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())

    async def namespace_everywhere() -> bool:
        return all(member_get(sim, c, NAMESPACES, "", "shop") is not None for c in sim.names)

    await eventually(namespace_everywhere, within=20, what="namespace shop in every member")
    healthy = await propagate(manager, sim, "healthy", ["a", "b", "c"])

    sim.fail("a", "blackhole")
    isolated = await propagate(manager, sim, "isolated", ["b", "c"])
    seat = manager.fleet.get("a")
    assert seat is not None
    assert seat.ready  # still believed Ready: its calls time out, they were not skipped
    assert member_get(sim, "a", SECRETS, "shop", "isolated-0") is None
    print(
        f"{COUNT} Secrets: {healthy:.2f} s to every cluster, {isolated:.2f} s to b and c with a black-holed"
    )
    assert isolated < 2 * healthy + 2
    sim.heal("a")
