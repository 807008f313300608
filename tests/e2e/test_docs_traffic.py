"""docs/traffic.md's ``fedctl traffic test`` example runs as written, against a simulated region.

The page's example probes the global address of the federation walkthrough; here the same command
line (its options unchanged) is pointed at a simulated region's own address (a Service of type
LoadBalancer with two ready pods in it), with the real ``fedctl``, and what it prints is checked
against the shape the page shows: one line a second naming the region, then the summary.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from federation.sim import Simulator
from tests.sim_support import api_client

DOC = Path(__file__).resolve().parents[2] / "docs" / "traffic.md"
FEDCTL = str(Path(sys.executable).parent / "fedctl")
REGION = "us-central1"


def example() -> list[str]:
    (line,) = [
        line
        for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)
        for line in block.splitlines()
        if line.startswith("fedctl traffic test ")
    ]
    return shlex.split(line)


@pytest.fixture
def regional_address(tmp_path: Path) -> Iterator[str]:
    kubeconfig = tmp_path / "sim.kubeconfig"
    with Simulator([REGION], kubeconfig=kubeconfig, start_delay=0.2), api_client(kubeconfig, REGION) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": "shop"}})
        labels = {"app": "web"}
        apps.create_namespaced_replica_set(
            "shop",
            {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                    },
                },
            },
        )
        core.create_namespaced_service(
            "shop",
            {
                "metadata": {"name": "web"},
                "spec": {"type": "LoadBalancer", "selector": labels, "ports": [{"port": 80}]},
            },
        )
        deadline = time.monotonic() + 30
        while True:
            ingress = core.read_namespaced_service("web", "shop").status.load_balancer.ingress
            ready = apps.read_namespaced_replica_set("web", "shop").status.ready_replicas or 0
            if ingress and ready == 2:
                break
            assert time.monotonic() < deadline, "the regional address and two ready pods"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{ingress[0].ports[0].port}/"


def test_the_traffic_test_example_runs_as_written(regional_address: str) -> None:
    args = example()
    assert args[:3] == ["fedctl", "traffic", "test"]
    url = args[3]
    assert url == "http://127.0.0.1:31000/", "the page's global address (the first Service's port)"
    done = subprocess.run(
        [FEDCTL, *args[1:3], regional_address, *args[4:]], capture_output=True, text=True, timeout=60
    )
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    seconds = [line for line in done.stdout.splitlines() if re.match(r"\s*\d+s\s", line)]
    assert len(seconds) >= 5, done.stdout
    assert all(f"{REGION}=" in line and "failed=0" in line for line in seconds), done.stdout
    assert "summary: sent=250 ok=250 failed=0" in done.stdout, done.stdout
    assert f"by region: {REGION}=250" in done.stdout, done.stdout
