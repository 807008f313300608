"""Crash safety: SIGKILL of ``federation-controller`` mid-propagation, and Postgres restarted under it.

The controller runs as a user runs it (its own process, ``FEDERATION_DATABASE_URL``, the key file);
members are simulated clusters; the test writes federated objects straight into the same database
through a registry, as an API server would. After a kill and a restart, every member holds exactly
what the plans say: nothing lost (every copy there) and nothing done twice (no replicas beyond the
federated count, every member ReplicaSet made once: its uid unchanged by the restart).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
from federation.apis import CLUSTERS as CLUSTERS_KIND
from federation.apis import FEDERATION_KINDS, FEDERATION_SCHEMAS
from federation.sim import Simulator
from federation.store import (
    EmbeddedPostgres,
    PostgresStorage,
    Sealer,
    generate_key_file,
    make_engine,
    migrate,
)
from tests.federation_support import cluster_objects, member_get
from tests.integration.test_controllers_division import replica_set

CLUSTERS = ["a", "b", "c"]
SECRET_COUNT = 150
RS_COUNT = 15


def controller(url: str, key_file: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FEDERATION_DATABASE_URL": url,
        "FEDERATION_ENCRYPTION_KEY_FILE": str(key_file),
        "FEDERATION_CONTROLLER_METRICS_PORT": "0",
    }
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("federation-controller"))],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Simulator, EmbeddedPostgres, str, Path]]:
    with tempfile.TemporaryDirectory(prefix="federation-crash-pg-") as pg_dir:
        postgres = EmbeddedPostgres.start(Path(pg_dir) / "pg")
        try:
            postgres.create_database("federation")
            url = postgres.url("federation")
            migrate.upgrade(url)
            key_file = tmp_path / "encryption.key"
            generate_key_file(key_file)
            with Simulator(CLUSTERS, kubeconfig=tmp_path / "sim.kubeconfig", start_delay=0.2) as sim:
                yield sim, postgres, url, key_file
        finally:
            postgres.stop()


def counts(sim: Simulator) -> dict[str, tuple[int, int, int, set[str]]]:
    """Per member: secrets in shop, ReplicaSets in shop, their replicas, and the ReplicaSets' uids."""
    out = {}
    for name in sim.names:
        storage = sim.cluster(name).storage
        secrets = sim.call(storage.list(SECRETS, "shop")).items
        sets = sim.call(storage.list(REPLICASETS, "shop")).items
        out[name] = (
            len(secrets),
            len(sets),
            sum(int(rs["spec"]["replicas"]) for rs in sets),
            {rs["metadata"]["uid"] for rs in sets},
        )
    return out


def converged(sim: Simulator) -> bool:
    now = counts(sim)
    return all(c[0] == SECRET_COUNT and c[1] == RS_COUNT for c in now.values()) and (
        sum(c[2] for c in now.values()) == RS_COUNT * 3
    )


async def wait(check: object, *, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.anyio
async def test_killed_mid_propagation_and_postgres_restarted_nothing_lost_nothing_twice(
    world: tuple[Simulator, EmbeddedPostgres, str, Path], tmp_path: Path
) -> None:
    sim, postgres, url, key_file = world
    engine = make_engine(url, pool_size=4)
    storage = PostgresStorage(engine, Sealer.from_key_file(key_file), poll_interval=0.1)
    await storage.start()
    registry = Registry(Scheme(FEDERATION_KINDS), storage, SchemaSet(extra=FEDERATION_SCHEMAS))
    log = tmp_path / "controller.log"
    process = controller(url, key_file, log)
    try:
        for namespace in ("default", "federation-system", "shop"):
            await registry.create(NAMESPACES, "", {"metadata": {"name": namespace}}, WriteOptions())
        for name in CLUSTERS:
            secret, cluster = cluster_objects(name, sim.cluster(name).kube_context())
            await registry.create(SECRETS, "federation-system", secret, WriteOptions())
            await registry.create(CLUSTERS_KIND, "", cluster, WriteOptions())
        for i in range(RS_COUNT):
            await registry.create(REPLICASETS, "shop", replica_set(f"web-{i}", 3), WriteOptions())
        for i in range(SECRET_COUNT):
            body = {"metadata": {"name": f"s-{i}", "namespace": "shop"}, "data": {"k": "dg=="}}
            await registry.create(SECRETS, "shop", body, WriteOptions())

        def some_but_not_all() -> bool:
            now = counts(sim)
            total = sum(c[0] for c in now.values())
            return 0 < total < SECRET_COUNT * len(CLUSTERS) // 2

        await wait(some_but_not_all, within=60, what="propagation under way")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        before = counts(sim)
        assert not converged(sim), "the kill came after the end: make the work larger"

        process = controller(url, key_file, log)
        await wait(lambda: converged(sim), within=90, what="convergence after the restart")
        after = counts(sim)
        for name in CLUSTERS:
            assert before[name][3] <= after[name][3], "a ReplicaSet made before the kill was made again"
            assert after[name][:3] == (SECRET_COUNT, RS_COUNT, RS_COUNT)

        # Postgres stopped and started under the running controller: it recovers without a restart.
        postgres.stop()
        await asyncio.sleep(2)
        postgres = EmbeddedPostgres.start(postgres.data_dir)  # the same port
        body = {"metadata": {"name": "after-outage", "namespace": "shop"}, "data": {"k": "dg=="}}
        for attempt in range(100):
            try:
                await registry.create(SECRETS, "shop", body, WriteOptions())
                break
            except Exception:
                if attempt == 99:
                    raise
                await asyncio.sleep(0.2)

        def everywhere() -> bool:
            return all(member_get(sim, n, SECRETS, "shop", "after-outage") is not None for n in CLUSTERS)

        await wait(everywhere, within=60, what="a Secret made after the outage in every member")
        assert process.poll() is None, log.read_text()[-2000:]
        final = counts(sim)
        for name in CLUSTERS:
            assert final[name][1:3] == (RS_COUNT, RS_COUNT)
            assert final[name][3] == after[name][3]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await storage.close()
        await engine.dispose()
