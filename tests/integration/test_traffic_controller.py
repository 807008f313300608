"""The global load balancer follows the regions: real Postgres, simulated regions, real Caddy."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from federation.apimachinery import NAMESPACES, REPLICASETS, SERVICES, Obj, WriteOptions
from federation.apis import PLACEMENTS, REPLICA_SET_PREFERENCES
from federation.controllers import ControllerManager
from federation.settings import TrafficSettings
from federation.sim import Simulator
from federation.store import PostgresStorage
from tests.federation_support import controllers_over, eventually
from tests.integration.test_controllers_division import replica_set

pytestmark = pytest.mark.anyio


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator(["taiwan", "tokyo"], kubeconfig=tmp_path / "sim.kubeconfig", start_delay=0.2) as s:
        yield s


@pytest.fixture
async def manager(
    federation_storage: PostgresStorage, sim: Simulator, tmp_path: Path
) -> AsyncIterator[ControllerManager]:
    traffic = TrafficSettings(traffic_provider="caddy", traffic_ports="32100-32199")
    async with controllers_over(federation_storage, sim, traffic=traffic, work_dir=tmp_path) as m:
        yield m


def web_service() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }


async def test_traffic_follows_the_replicas_and_leaves_an_offline_region(
    manager: ControllerManager, sim: Simulator
) -> None:
    registry = manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    prefs = {"clusters": {"taiwan": {"weight": 2}, "tokyo": {"weight": 1}}}
    await registry.create(
        REPLICASETS,
        "shop",
        replica_set("web", 3, {REPLICA_SET_PREFERENCES: json.dumps(prefs)}),
        WriteOptions(),
    )
    await registry.create(SERVICES, "shop", web_service(), WriteOptions())

    async def global_address() -> str | None:
        svc = await registry.get(SERVICES, "shop", "web")
        ingress = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        return f"http://{ingress[0]['ip']}:{ingress[0]['ports'][0]['port']}" if ingress else None

    url = await eventually(global_address, within=20, what="the global address in the Service's status")

    async def weighted() -> dict[str, int] | None:
        weights = manager.routing.weights.get(("services", "shop", "web"))
        found = dict(weights.weights) if weights else {}
        return found if found == {"taiwan": 2, "tokyo": 1} else None

    await eventually(weighted, within=20, what="weights 2:1")
    served: collections.Counter[str] = collections.Counter()
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(150):
            answer = await client.get(url)
            assert answer.status_code == 200
            served[answer.headers["x-sim-cluster"]] += 1
    assert 85 <= served["taiwan"] <= 115, served
    assert served["taiwan"] + served["tokyo"] == 150

    placement = await registry.get(PLACEMENTS, "shop", "web-service")
    regions = {c["name"]: c for c in placement["status"]["clusters"]}
    assert regions["taiwan"]["trafficWeight"] == 2
    assert regions["tokyo"]["address"].startswith("127.0.0.1:")

    sim.fail("taiwan", "down")
    failed_at = time.monotonic()

    async def taken_out() -> bool:
        weights = manager.routing.weights.get(("services", "shop", "web"))
        return weights is not None and weights.weights.get("taiwan") == 0

    await eventually(taken_out, within=10, interval=0.05, what="taiwan's weight at 0")
    print(f"taiwan's weight 0 after {time.monotonic() - failed_at:.2f} s")
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(30):
            answer = await client.get(url)
            assert answer.status_code == 200
            assert answer.headers["x-sim-cluster"] == "tokyo"
