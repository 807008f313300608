"""``federation-controller`` as a deployment runs it: beside an API server that runs no controllers.

``fedctl up --no-controllers`` serves the API on the test's Postgres; ``federation-controller`` gets
that database's URL and the key file ``fedctl up`` made (cluster credentials are sealed with it). Two
simulated members are registered through the API; the controller must propagate a ReplicaSet to them,
serve /metrics with ``federation_cluster_ready``, /healthz and /readyz, and exit 0 on SIGTERM. Its
refusals (no database URL, an old schema, a bad setting) are one line each.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from federation.sim import Simulator
from tests.conftest import MakeDatabase
from tests.federation_support import cluster_objects, member_replicas
from tests.servers import RunningFederation, start_federation

CONTROLLER = str(Path(sys.executable).with_name("federation-controller"))


def controller_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDERATION_")}
    env.update(values)
    return env


@pytest.fixture
def federation(tmp_path: Path, database_url: str) -> Iterator[RunningFederation]:
    running = start_federation(tmp_path / "data", database_url=database_url, extra_args=["--no-controllers"])
    yield running
    out = running.stop()
    assert "controllers: running" not in out


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator(["a", "b"], kubeconfig=tmp_path / "sim.kubeconfig", start_delay=0.2) as s:
        yield s


def wait_for(check: object, *, within: float, what: str, seen: object = None) -> None:
    """Until ``check()``; on timeout the message shows ``seen()`` (what the federation says)."""
    assert callable(check)
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            shown = seen() if callable(seen) else ""
            raise AssertionError(f"timed out waiting for {what}: {shown}")
        time.sleep(0.2)


def test_the_controller_process_acts_serves_metrics_and_stops_on_sigterm(
    tmp_path: Path, database_url: str, federation: RunningFederation, sim: Simulator
) -> None:
    with federation.client(federation.admin_token) as api:
        for name in sim.names:
            secret, cluster = cluster_objects(name, sim.cluster(name).kube_context())
            assert api.post("/api/v1/namespaces/federation-system/secrets", json=secret).status_code == 201
            assert api.post("/apis/federation.io/v1alpha1/clusters", json=cluster).status_code == 201
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "shop"}}).status_code == 201
        web = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                # Members turn Ready one after the other: without rebalance, least movement keeps
                # the replicas where the first plan (one Ready member) put them.
                "annotations": {"federation.kubernetes.io/replica-set-preferences": '{"rebalance": true}'},
            },
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        }
        assert api.post("/apis/apps/v1/namespaces/shop/replicasets", json=web).status_code == 201

    env = controller_env(
        FEDERATION_DATABASE_URL=database_url,
        FEDERATION_ENCRYPTION_KEY_FILE=str(federation.data_dir / "encryption.key"),
        FEDERATION_CONTROLLER_METRICS_PORT="0",
    )
    stderr = tmp_path / "controller.err"
    with stderr.open("w") as err:
        proc = subprocess.Popen([CONTROLLER], env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"on (http://\S+)", line)
        assert found, line + stderr.read_text()
        with httpx.Client(base_url=found.group(1), timeout=5) as probes:
            assert probes.get("/healthz").status_code == 200

            def ready() -> bool:
                return probes.get("/readyz").status_code == 200

            wait_for(ready, within=30, what="/readyz")

            def spread() -> bool:
                return member_replicas(sim, "shop", "web") == {"a": 2, "b": 2}

            def placements() -> object:
                with federation.client(federation.admin_token) as api:
                    return api.get("/apis/federation.io/v1alpha1/namespaces/shop/placements").json()

            wait_for(spread, within=30, what="2 replicas in each member", seen=placements)
            text = probes.get("/metrics").text
            assert 'federation_cluster_ready{cluster="a"} 1.0' in text
            assert 'federation_cluster_ready{cluster="b"} 1.0' in text
            assert "federation_propagation_total" in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    logged = stderr.read_text()
    assert "cluster a is Ready" in logged
    assert "Traceback" not in logged
    for name in sim.names:
        assert str(sim.cluster(name).kube_context().token) not in logged


def run_controller(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONTROLLER], env=env, capture_output=True, text=True, timeout=60)


def test_refusals_are_one_line(tmp_path: Path, make_database: MakeDatabase) -> None:
    key = tmp_path / "key"
    key.write_text("A" * 43 + "=\n")
    done = run_controller(controller_env(FEDERATION_ENCRYPTION_KEY_FILE=str(key)))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "federation-controller: error: FEDERATION_DATABASE_URL is required "
        "(the federation's Postgres, as the API servers use)"
    ]

    done = run_controller(controller_env(FEDERATION_PROBE_TIMEOUT="-1"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "FEDERATION_PROBE_TIMEOUT" in done.stderr

    old = make_database(migrated=False)
    done = run_controller(
        controller_env(FEDERATION_DATABASE_URL=old, FEDERATION_ENCRYPTION_KEY_FILE=str(key))
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "federation-controller: error: the database schema is not current; run `fedctl db upgrade` first"
    ]

    done = subprocess.run([CONTROLLER, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "FEDERATION_DATABASE_URL" in done.stdout
