"""A real Prometheus scraping a running federation: the metrics mean what docs/metrics.md says.

``fedctl up`` (with ``FEDERATION_METRICS_OPEN=true``, so Prometheus scrapes without a token) and three
simulated regions, registered through the API, with a ReplicaSet of 6 spread over them. Prometheus
(Debian's package) runs on loopback with a scrape interval of 1 s, the federation's ``/metrics`` over
HTTPS trusting ``data/pki/ca.crt``, and docs/alerts.yaml as its rules. Checked as an operator would:
the per-cluster spread read back with PromQL equals what the members hold; ``promtool check metrics``
accepts a real scrape; with a region down, the offline alert's expression goes true and the alert is
pending for that cluster, while the leader alert stays quiet.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from federation.apis import SYSTEM_NAMESPACE
from federation.sim import Simulator
from tests.federation_support import cluster_objects, member_ready
from tests.servers import RunningFederation, start_federation
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "docs" / "alerts.yaml"
EXAMPLES = ROOT / "docs" / "examples"
REGIONS = ["asia-east1", "europe-west1", "us-central1"]
SPREAD = 'sum by (cluster) (federation_replicaset_replicas{state="ready"})'


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def by_cluster(self, expr: str) -> dict[str, float]:
        return {r["metric"]["cluster"]: float(r["value"][1]) for r in self.query(expr)}

    def alerts(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/alerts", timeout=10).json()
        alerts: list[dict[str, Any]] = answer["data"]["alerts"]
        return alerts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def until(check: Any, *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        last = check()
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out after {within} s waiting for {what}: {last!r}"
        time.sleep(0.2)


def register(running: RunningFederation, sim: Simulator) -> None:
    """The clusters and the app, through the API as a user's kubectl sends them."""
    with running.client(running.admin_token) as http:
        for name in sim.names:
            secret, cluster = cluster_objects(name, sim.cluster(name).kube_context())
            made = http.post(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets", json=secret)
            assert made.status_code == 201, made.text
            made = http.post("/apis/federation.io/v1alpha1/clusters", json=cluster)
            assert made.status_code == 201, made.text
        made = http.post("/api/v1/namespaces", json=yaml.safe_load((EXAMPLES / "namespace.yaml").read_text()))
        assert made.status_code == 201, made.text
        rs = yaml.safe_load((EXAMPLES / "replicaset.yaml").read_text())
        made = http.post("/apis/apps/v1/namespaces/shop/replicasets", json=rs)
        assert made.status_code == 201, made.text


@pytest.fixture
def federation(tmp_path: Path, database_url: str) -> Iterator[tuple[RunningFederation, Simulator]]:
    with Simulator(REGIONS, kubeconfig=tmp_path / "sim.kubeconfig", start_delay=0.2) as sim:
        running = start_federation(
            tmp_path / "data",
            database_url=database_url,
            extra_env={"FEDERATION_METRICS_OPEN": "true"},
            controllers=True,
        )
        try:
            register(running, sim)
            yield running, sim
        finally:
            running.stop()


@pytest.fixture
def prometheus(tmp_path: Path, federation: tuple[RunningFederation, Simulator]) -> Iterator[Prometheus]:
    binary = require_tool("prometheus", "it scrapes the federation (Debian's package prometheus)")
    running, _ = federation
    target = running.url.removeprefix("https://").rstrip("/")
    assert target.startswith("127.0.0.1:"), running.url  # loopback only
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "federation",
                "scheme": "https",
                "tls_config": {"ca_file": str(running.ca_file)},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={address}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(process, f"http://{address}", log)
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        until(ready, within=30, what="Prometheus ready")
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_prometheus_reads_the_spread_and_sees_a_region_go_down(
    federation: tuple[RunningFederation, Simulator], prometheus: Prometheus
) -> None:
    running, sim = federation
    started = time.monotonic()

    def spread_matches() -> dict[str, float] | None:
        members = member_ready(sim, "shop", "web")
        seen = prometheus.by_cluster(SPREAD)
        if sum(members.values()) == 6 and seen == {c: float(n) for c, n in members.items()}:
            return seen
        return None

    spread = until(spread_matches, within=60, what=f"{SPREAD} equal to the members' ready replicas")
    print(f"spread by PromQL {spread} = members {member_ready(sim, 'shop', 'web')}")
    assert spread == {"asia-east1": 2.0, "europe-west1": 2.0, "us-central1": 2.0}
    assert [float(r["value"][1]) for r in prometheus.query("max(federation_controller_leader)")] == [1.0]
    assert [r["metric"]["job"] for r in prometheus.query("up == 1")] == ["federation"]

    promtool = require_tool("promtool", "it lints a real scrape (Debian's package prometheus)")
    with running.client() as http:  # no token: FEDERATION_METRICS_OPEN=true
        scrape = http.get("/metrics")
    assert scrape.status_code == 200, scrape.text
    assert "\nfederation_replicaset_replicas{" in scrape.text, scrape.text
    linted = subprocess.run(
        [promtool, "check", "metrics"], input=scrape.text, capture_output=True, text=True, timeout=30
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert not linted.stdout.strip(), linted.stdout  # not even a lint warning

    offline = next(r for r in yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"])
    assert offline["alert"] == "FederationClusterOffline"
    assert prometheus.query(offline["expr"]) == []
    down = time.monotonic()
    sim.fail("us-central1", "down")

    def offline_now() -> list[str]:
        return [r["metric"]["cluster"] for r in prometheus.query(offline["expr"])]

    assert until(offline_now, within=30, what="the offline expression true") == ["us-central1"]
    true_after = time.monotonic() - down

    def pending() -> list[dict[str, Any]]:
        return [a for a in prometheus.alerts() if a["labels"]["alertname"] == "FederationClusterOffline"]

    (alert,) = until(pending, within=10, what="FederationClusterOffline pending")
    assert alert["labels"]["cluster"] == "us-central1"
    assert alert["labels"]["severity"] == "critical"
    assert alert["state"] == "pending"  # for: 1m
    assert alert["annotations"]["summary"] == "Member cluster us-central1 is Offline"
    assert not [a for a in prometheus.alerts() if a["labels"]["alertname"] == "FederationNoControllerLeader"]

    moved = until(
        lambda: (s := prometheus.by_cluster(SPREAD)).get("asia-east1") == 3 and s,
        within=60,
        what="the spread after the failover",
    )
    print(
        f"offline expression true {true_after:.1f} s after the region went down; spread after: {moved}; "
        f"whole test {time.monotonic() - started:.1f} s"
    )
    assert moved["europe-west1"] == 3
