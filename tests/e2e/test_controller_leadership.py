"""Two federation-controller processes against one database: one leads, the other takes over.

- only the leader acts (its propagation counter moves, the standby's does not);
- after SIGKILL of the leader, the standby leads within the lease duration, and the work is neither
  lost nor done twice (every member ReplicaSet made once: its uid does not change);
- a leader paused (SIGSTOP) past its lease steps down when resumed and writes nothing to members.

(That a paused leader's writes to the federation fail is shown at the storage, where the fence is:
tests/integration/test_leases.py.)
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from federation.apimachinery import (
    NAMESPACES,
    REPLICASETS,
    SECRETS,
    Registry,
    SchemaSet,
    Scheme,
    WriteOptions,
)
from federation.apis import CLUSTERS, FEDERATION_KINDS, FEDERATION_SCHEMAS
from federation.sim import Simulator
from federation.store import PostgresStorage, Sealer, generate_key_file, make_engine
from tests.federation_support import cluster_objects
from tests.integration.test_controllers_division import replica_set

pytestmark = pytest.mark.anyio
LEASE_SECONDS = 4


@dataclass
class Controller:
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def leads(self) -> bool:
        return self.metric("federation_controller_leader") == 1.0

    def writes(self) -> float:
        return self.metric("federation_propagation_total")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.returncode is None:
                os.kill(self.process.pid, signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(url: str, key_file: Path, log: Path) -> Controller:
    env = {
        **os.environ,
        "FEDERATION_DATABASE_URL": url,
        "FEDERATION_ENCRYPTION_KEY_FILE": str(key_file),
        "FEDERATION_CONTROLLER_METRICS_PORT": "0",
        "FEDERATION_LEASE_DURATION": str(LEASE_SECONDS),
        "FEDERATION_TRAFFIC_PROVIDER": "none",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("federation-controller"))],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    controller = Controller(process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"on (http://\S+)", controller.output())
        if found:
            controller.url = found.group(1)
            return controller
        assert process.poll() is None, controller.output()
        time.sleep(0.1)
    raise AssertionError(f"federation-controller did not start: {controller.output()}")


async def until(check: object, *, within: float, what: str) -> float:
    """Seconds until ``check()`` is true."""
    started = time.monotonic()
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator(["a", "b"], kubeconfig=tmp_path / "sim.kubeconfig", start_delay=0.2) as s:
        yield s


@pytest.fixture
async def registry(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Registry, Path]]:
    key_file = tmp_path / "encryption.key"
    generate_key_file(key_file)
    engine = make_engine(database_url, pool_size=2)
    storage = PostgresStorage(engine, Sealer.from_key_file(key_file), poll_interval=0.1)
    await storage.start()
    yield Registry(Scheme(FEDERATION_KINDS), storage, SchemaSet(extra=FEDERATION_SCHEMAS)), key_file
    await storage.close()
    await engine.dispose()


def member_uids(sim: Simulator) -> dict[str, set[str]]:
    return {
        name: {
            rs["metadata"]["uid"]
            for rs in sim.call(sim.cluster(name).storage.list(REPLICASETS, "shop")).items
        }
        for name in sim.names
    }


async def test_one_leader_a_standby_takes_over_and_a_paused_leader_steps_down(
    registry: tuple[Registry, Path], sim: Simulator, database_url: str, tmp_path: Path
) -> None:
    reg, key_file = registry
    for namespace in ("default", "federation-system", "shop"):
        await reg.create(NAMESPACES, "", {"metadata": {"name": namespace}}, WriteOptions())
    for name in sim.names:
        secret, cluster = cluster_objects(name, sim.cluster(name).kube_context())
        await reg.create(SECRETS, "federation-system", secret, WriteOptions())
        await reg.create(CLUSTERS, "", cluster, WriteOptions())
    first = start(database_url, key_file, tmp_path / "first.log")
    second = third = None
    try:
        await until(first.leads, within=15, what="the first controller to lead")
        second = start(database_url, key_file, tmp_path / "second.log")
        await until(lambda: "standing by" in second.output(), within=15, what="the second to stand by")
        await reg.create(REPLICASETS, "shop", replica_set("web", 4), WriteOptions())

        def spread() -> bool:
            return all(len(uids) == 1 for uids in member_uids(sim).values())

        await until(spread, within=20, what="the ReplicaSet in both members")
        assert first.writes() > 0
        assert second.writes() == 0, "the standby wrote to members"
        assert not second.leads()
        made = member_uids(sim)

        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        took = await until(second.leads, within=LEASE_SECONDS + 3, what="the standby to lead")
        print(f"the standby led {took:.2f} s after the leader was killed (lease {LEASE_SECONDS} s)")
        assert took <= LEASE_SECONDS + 0.5
        await reg.create(REPLICASETS, "shop", replica_set("api", 2), WriteOptions())
        await until(
            lambda: all(len(uids) == 2 for uids in member_uids(sim).values()),
            within=20,
            what="the second ReplicaSet in both members",
        )
        after = member_uids(sim)
        for name in sim.names:
            assert made[name] <= after[name], "a ReplicaSet made before the handover was made again"

        third = start(database_url, key_file, tmp_path / "third.log")
        await until(lambda: "standing by" in third.output(), within=15, what="the third to stand by")
        writes_before = second.writes()  # everything has converged: the leader is idle
        os.kill(second.process.pid, signal.SIGSTOP)
        took = await until(third.leads, within=LEASE_SECONDS + 3, what="the third to lead")
        print(f"the third led {took:.2f} s after the leader was paused")
        await reg.create(REPLICASETS, "shop", replica_set("late", 2), WriteOptions())
        os.kill(second.process.pid, signal.SIGCONT)
        await until(
            lambda: "lost the lease" in second.output(), within=5, what="the paused leader to step down"
        )
        writes_before = second.writes()
        assert not second.leads()
        await until(
            lambda: all(len(uids) == 3 for uids in member_uids(sim).values()),
            within=20,
            what="the third ReplicaSet in both members, from the new leader",
        )
        await asyncio.sleep(1)
        assert second.writes() == writes_before, "the paused leader wrote to members after it resumed"
        assert third.leads()
    finally:
        for controller in (first, second, third):
            if controller is not None:
                controller.stop()
