"""The traffic probe against real simulated regional addresses: answers by region, a cluster going
down mid-run counted as failures, and ``fedctl traffic test`` as a subprocess (lines, summary, --json,
refusals)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from federation.cli.probing import ProbeError, Second, probe
from federation.sim import Simulator
from tests.sim_support import api_client, wait_until

SERVING, OTHER = "us-central1", "europe-west1"
FEDCTL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "fedctl")
LINE = re.compile(r"^ +(\d+)s  (\S+=\d+(?: \S+=\d+)*)  failed=(\d+)(?: \(([^)]*)\))?  p99=\S+$")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    kubeconfig = tmp_path_factory.mktemp("traffic") / "sim.kubeconfig"
    with Simulator(
        [SERVING, OTHER], kubeconfig=kubeconfig, nodes=1, pods_per_node=20, start_delay=0.05
    ) as running:
        yield running


@pytest.fixture
def address(sim: Simulator) -> Iterator[str]:
    """The regional address of a LoadBalancer Service with two ready pods in ``SERVING``."""
    ns = f"t-{uuid.uuid4().hex[:6]}"
    with api_client(sim.kubeconfig, SERVING) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": ns}})
        labels = {"app": "web"}
        apps.create_namespaced_replica_set(
            ns,
            {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                    },
                },
            },
        )
        core.create_namespaced_service(
            ns,
            {
                "metadata": {"name": "web"},
                "spec": {"type": "LoadBalancer", "selector": labels, "ports": [{"port": 80}]},
            },
        )
        ingress = wait_until(lambda: core.read_namespaced_service("web", ns).status.load_balancer.ingress)
        wait_until(lambda: (apps.read_namespaced_replica_set("web", ns).status.ready_replicas or 0) == 2)
    yield f"http://127.0.0.1:{ingress[0].ports[0].port}/"
    sim.heal(SERVING)
    with api_client(sim.kubeconfig, SERVING) as api:
        client.CoreV1Api(api).delete_namespace(ns)


def test_every_answer_is_counted_by_region_second_by_second(address: str) -> None:
    seconds: list[Second] = []
    summary = asyncio.run(probe(address, rate=50, duration=2, timeout=2.0, on_second=seconds.append))
    assert [s.t for s in seconds] == [1, 2]
    assert summary.sent == summary.ok == 100
    assert summary.failed == 0
    assert summary.failure_fraction == 0.0
    assert summary.answered == 100
    assert summary.by_region == {SERVING: 100}
    assert sum(s.by_region.get(SERVING, 0) for s in seconds) == 100
    assert all(40 <= s.ok <= 60 for s in seconds), seconds  # paced, not one burst
    latencies = [summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.max_ms]
    assert None not in latencies
    assert 0 < latencies[0] <= latencies[1] <= latencies[2] <= latencies[3]
    assert 1.9 <= summary.duration < 3.0


def test_a_cluster_down_mid_run_shows_as_refused_and_reset_then_heals(sim: Simulator, address: str) -> None:
    seconds: list[Second] = []
    timer = threading.Timer(1.0, sim.fail, (SERVING, "down"))
    timer.start()
    try:
        summary = asyncio.run(probe(address, rate=40, duration=3, timeout=1.0, on_second=seconds.append))
    finally:
        timer.join()
    assert summary.sent == 120
    assert summary.ok + summary.failed == 120
    assert 20 <= summary.ok <= 60, summary  # the first second or so answered
    assert set(summary.failures) <= {"refused", "reset"}, summary.failures
    assert summary.failures.get("refused", 0) >= 40
    assert seconds[0].by_region.get(SERVING, 0) >= 30
    assert seconds[-1].ok == 0
    assert seconds[-1].failed >= 30
    sim.heal(SERVING)
    healed = asyncio.run(probe(address, rate=20, duration=1))
    assert healed.ok == 20
    assert healed.by_region == {SERVING: 20}


def test_a_503_is_an_answer_that_fails_and_the_region_comes_from_the_header(sim: Simulator) -> None:
    with api_client(sim.kubeconfig, OTHER) as api:
        core = client.CoreV1Api(api)
        ns = f"t-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": ns}})
        spec = {"type": "LoadBalancer", "selector": {"app": "none"}, "ports": [{"port": 80}]}
        core.create_namespaced_service(ns, {"metadata": {"name": "empty"}, "spec": spec})
        try:
            ingress = wait_until(
                lambda: core.read_namespaced_service("empty", ns).status.load_balancer.ingress
            )
            summary = asyncio.run(probe(f"http://localhost:{ingress[0].ports[0].port}/", rate=10, duration=1))
        finally:
            core.delete_namespace(ns)
    assert summary.failures == {"503": 10}
    assert summary.answered == 10
    assert summary.ok == 0


def test_remote_hosts_and_bounds_are_refused_before_sending() -> None:
    with pytest.raises(ProbeError, match="not a loopback address"):
        asyncio.run(probe("http://192.0.2.1/", rate=1, duration=1))
    with pytest.raises(ProbeError, match="rate must be"):
        asyncio.run(probe("http://127.0.0.1:1/", rate=2001, duration=1))
    with pytest.raises(ProbeError, match="duration must be"):
        asyncio.run(probe("http://127.0.0.1:1/", rate=1, duration=0))


def fedctl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEDCTL, "traffic", "test", *args], capture_output=True, text=True, timeout=timeout)


def test_the_command_prints_a_line_a_second_and_a_summary(address: str) -> None:
    started = time.monotonic()
    done = fedctl(address, "--rate", "50", "--duration", "2")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    lines = done.stdout.splitlines()
    assert lines[0] == f"probing {address} at 50/s for 2s (timeout 2s)"
    matched = [LINE.match(line) for line in lines[1:3]]
    assert all(matched), lines
    assert [int(m[1]) for m in matched if m] == [1, 2]
    assert sum(int(m[2].removeprefix(f"{SERVING}=")) for m in matched if m) == 100
    assert lines[3] == "summary: sent=100 ok=100 failed=0 (0.00%) in " + lines[3].rsplit(" ", 1)[1]
    assert lines[4] == f"  by region: {SERVING}=100"
    assert lines[5] == "  failures: none"
    assert re.fullmatch(r"  latency: p50=\S+ms p90=\S+ms p99=\S+ms max=\S+ms", lines[6])
    assert "\x1b[" not in done.stdout  # no colour off a TTY


def test_json_puts_only_the_summary_on_stdout(address: str) -> None:
    done = fedctl(address, "--rate", "50", "--duration", "1", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sent"] == summary["ok"] == 50
    assert summary["by_region"] == {SERVING: 50}
    assert summary["failure_fraction"] == 0.0
    assert set(summary) >= {"p50_ms", "p90_ms", "p99_ms", "max_ms", "duration", "failures"}
    assert "  1s  " in done.stderr
    assert "summary: sent=50" in done.stderr


def test_the_command_refuses_remote_hosts_and_bad_bounds_and_exits_1_when_nothing_answers() -> None:
    refused = fedctl("http://example.com/", "--rate", "1", "--duration", "1")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr == (
        "error: example.com is not a loopback address; pass --allow-remote to probe it on purpose\n"
    )
    assert fedctl("http://127.0.0.1:1/", "--rate", "5000").returncode == 2
    dead = fedctl("http://127.0.0.1:1/", "--rate", "5", "--duration", "1", "--json")
    assert dead.returncode == 1
    assert json.loads(dead.stdout)["failures"] == {"refused": 5}
    assert dead.stderr.splitlines()[-1] == "error: nothing answered at http://127.0.0.1:1/"
