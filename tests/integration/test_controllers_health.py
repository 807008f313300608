"""Cluster health: conditions a user reads with kubectl, from probes and from credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from federation.apimachinery import EVENTS, SECRETS, Obj, WriteOptions
from federation.apis import CLUSTERS, SYSTEM_NAMESPACE
from federation.controllers import ControllerManager
from federation.sim import Simulator
from federation.store import PostgresStorage
from tests.federation_support import all_ready, eventually, fast_settings, register, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator(["a"], kubeconfig=tmp_path / "sim.kubeconfig", nodes=2, pods_per_node=5) as s:
        yield s


@pytest.fixture
async def manager(federation_storage: PostgresStorage, sim: Simulator) -> AsyncIterator[ControllerManager]:
    m = ControllerManager(federation_storage, settings=fast_settings())
    await register(m, sim)
    async with running(m):
        yield m


def ready_condition(cluster: Obj) -> Obj:
    return next(c for c in cluster["status"]["conditions"] if c["type"] == "Ready")


async def test_a_ready_cluster_shows_its_version_and_capacity(manager: ControllerManager) -> None:
    await all_ready(manager, ["a"])

    async def described() -> Obj | None:
        cluster = await manager.registry.get(CLUSTERS, "", "a")
        status = cluster.get("status") or {}
        return cluster if status.get("capacity") and status.get("kubernetesVersion") else None

    cluster = await eventually(described, what="version and capacity on the Cluster")
    assert cluster["status"]["capacity"] == {"pods": 10, "nodes": 2}
    assert cluster["status"]["kubernetesVersion"].startswith("v1.")
    condition = ready_condition(cluster)
    assert condition["status"] == "True"
    assert condition["reason"] == "ClusterReady"
    assert condition["lastTransitionTime"]
    page = await manager.storage.list(EVENTS, "default")
    assert any(e["reason"] == "ClusterReady" and e["involvedObject"]["name"] == "a" for e in page.items)


async def test_bad_credentials_are_a_condition_not_a_traceback(
    manager: ControllerManager, caplog: pytest.LogCaptureFixture
) -> None:
    await all_ready(manager, ["a"])
    secret = await manager.registry.get(SECRETS, SYSTEM_NAMESPACE, "a-credentials")
    good = dict(secret["data"])
    secret["data"] = {"ca.crt": good["ca.crt"]}  # the token is gone
    await manager.registry.update(SECRETS, SYSTEM_NAMESPACE, "a-credentials", secret, WriteOptions())

    async def refused() -> Obj | None:
        condition = ready_condition(await manager.registry.get(CLUSTERS, "", "a"))
        return condition if condition["status"] == "False" else None

    condition = await eventually(refused, what="cluster a Offline for its credentials")
    assert condition["reason"] == "InvalidCredentials"
    assert "a-credentials" in condition["message"]
    assert "token" in condition["message"]
    assert "Traceback" not in caplog.text

    secret = await manager.registry.get(SECRETS, SYSTEM_NAMESPACE, "a-credentials")
    secret["data"] = good
    await manager.registry.update(SECRETS, SYSTEM_NAMESPACE, "a-credentials", secret, WriteOptions())
    await all_ready(manager, ["a"])
