"""``fedctl`` as an operator uses it: the installed command against ``fedctl up`` and simulated regions.

One federation (``fedctl up`` with the module's database) and three simulated member clusters,
registered through the API as docs/federation.md does, serve the whole module. Every check drives the
real ``fedctl`` as a subprocess with the kubeconfig ``fedctl up`` wrote and reads what a user reads:
stdout, the one line on stderr, the exit code.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from federation.apis import SYSTEM_NAMESPACE
from federation.sim import Simulator
from tests.federation_support import cluster_objects
from tests.servers import FEDCTL, RunningFederation, start_federation

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
REGIONS = ["asia-east1", "europe-west1", "us-central1"]


@dataclass
class Federation:
    running: RunningFederation

    def fedctl(self, *args: str, kubeconfig: bool = True) -> subprocess.CompletedProcess[str]:
        config = ["--kubeconfig", str(self.running.kubeconfig)] if kubeconfig else []
        return subprocess.run([FEDCTL, *config, *args], capture_output=True, text=True, timeout=90, cwd=ROOT)

    def ok(self, *args: str) -> str:
        done = self.fedctl(*args)
        assert done.returncode == 0, (
            f"fedctl {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout


def _register(running: RunningFederation, sim: Simulator) -> None:
    with running.client(running.admin_token) as http:
        for name in sim.names:
            secret, cluster = cluster_objects(name, sim.cluster(name).kube_context())
            made = http.post(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets", json=secret)
            assert made.status_code == 201, made.text
            made = http.post("/apis/federation.io/v1alpha1/clusters", json=cluster)
            assert made.status_code == 201, made.text
        deadline = time.monotonic() + 60
        while True:
            items = http.get("/apis/federation.io/v1alpha1/clusters").json()["items"]
            ready = [
                c["metadata"]["name"]
                for c in items
                if any(
                    k.get("type") == "Ready" and k.get("status") == "True"
                    for k in (c.get("status") or {}).get("conditions") or []
                )
            ]
            if sorted(ready) == sorted(sim.names):
                return
            assert time.monotonic() < deadline, f"clusters not Ready: {items}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Federation]:
    folder = tmp_path_factory.mktemp("fedctl-cli")
    with Simulator(REGIONS, kubeconfig=folder / "sim.kubeconfig", start_delay=0.2) as sim:
        running = start_federation(folder / "data", database_url=database_url, controllers=True)
        try:
            _register(running, sim)
            yield Federation(running)
        finally:
            running.stop()


def test_apply_a_directory_read_it_and_delete_it(federation: Federation) -> None:
    applied = federation.ok("apply", "-f", str(EXAMPLES), "--wait", "--timeout", "90s")
    for line in ("namespace/shop created", "secret/shop-db created", "replicaset.apps/web created"):
        assert line in applied, applied
    assert "service/web created" in applied
    assert "all 4 objects ready in their clusters" in applied
    assert applied.index("namespace/shop created") < applied.index("replicaset.apps/web created")

    again = federation.ok("apply", "-f", str(EXAMPLES))
    assert again.count("unchanged") == 4, again

    table = federation.ok("get", "rs", "-n", "shop")
    assert re.search(r"^NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE$", table, re.M), table
    assert re.search(r"^web\s+6\s+6\s+6\s+\d+s$", table, re.M), table
    as_yaml = yaml.safe_load(federation.ok("get", "replicaset", "web", "-n", "shop", "-o", "yaml"))
    assert (as_yaml["kind"], as_yaml["spec"]["replicas"]) == ("ReplicaSet", 6)
    across = federation.ok("get", "svc", "-A", "-l", "app=web")
    assert re.search(r"^NAMESPACE\s+NAME\s+TYPE\s", across, re.M), across
    assert re.search(r"^shop\s+web\s+LoadBalancer\s", across, re.M), across
    none = federation.fedctl("get", "rs", "-A", "-l", "app=nothing")
    assert (none.returncode, none.stdout, none.stderr.strip()) == (0, "", "No resources found.")
    placements = federation.ok("get", "pl", "-n", "shop", "-o", "wide")
    assert "asia-east1=2/2 europe-west1=2/2 us-central1=2/2" in placements, placements

    described = federation.ok("describe", "rs", "web", "-n", "shop")
    assert "Replicas:       6 desired | 6 current | 6 ready" in described, described
    assert "Placement (web-replicaset):" in described
    for region in REGIONS:
        assert re.search(rf"^  {region}\s+Ready\s+2\s+2\s+2\s*$", described, re.M), described
    assert re.search(r"Normal\s+Scheduled\s+federation-controller\s+placed on", described), described
    service = federation.ok("describe", "svc", "web", "-n", "shop")
    assert re.search(r"^  CLUSTER\s+STATE\s+ADDRESS\s+WEIGHT\s+SHARE", service, re.M), service

    events = federation.ok("events", "-n", "shop")
    assert re.search(r"^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE$", events, re.M), events
    assert re.search(r"Normal\s+Scheduled\s+replicaset/web\s+placed on", events), events
    clusters = federation.ok("events", "-A")
    assert re.search(r"^default\s+\S+\s+Normal\s+ClusterReady\s+cluster/us-central1\s", clusters, re.M)

    gone = federation.ok("delete", "rs", "web", "-n", "shop", "--wait", "--timeout", "60s")
    assert "replicaset.apps/web deleted" in gone, gone
    assert "all 1 objects gone" in gone, gone
    missing = federation.fedctl("get", "rs", "web", "-n", "shop")
    assert missing.returncode == 1
    assert missing.stderr == 'error: replicasets.apps "web" not found\n'
    deleted = federation.ok("delete", "-f", str(EXAMPLES), "--ignore-not-found")
    assert "namespace/shop deleted" in deleted, deleted
    assert deleted.index("service/web deleted") < deleted.index("namespace/shop deleted")


def test_one_bad_document_applies_nothing(federation: Federation, tmp_path: Path) -> None:
    good = (EXAMPLES / "namespace.yaml").read_text().replace("name: shop", "name: badshop")
    secret = (EXAMPLES / "secret.yaml").read_text().replace("namespace: shop", "namespace: badshop")
    bad = (
        (EXAMPLES / "replicaset.yaml")
        .read_text()
        .replace("namespace: shop", "namespace: badshop")
        .replace("replicas: 6", 'replicas: "three"')
    )
    manifest = tmp_path / "app.yaml"
    manifest.write_text(f"{good}---\n{secret}---\n{bad}")
    line = f"{good}---\n{secret}---\n".count("\n") + 1 + 2  # the RS's two comment lines come first
    done = federation.fedctl("apply", "-f", str(manifest))
    assert done.returncode == 1, done
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: {manifest}: document 3 (line {line}): "), done.stderr
    assert "replicas" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    nothing = federation.fedctl("get", "ns", "badshop")
    assert (nothing.returncode, nothing.stderr) == (1, 'error: namespaces "badshop" not found\n')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_failures_and_usage_errors_are_one_line(federation: Federation) -> None:
    url = f"https://127.0.0.1:{_free_port()}"
    down = federation.fedctl("--server", url, "--token", "x", "get", "ns", kubeconfig=False)
    assert (down.returncode, down.stderr) == (
        1,
        f"error: cannot reach the federation at {url}: connection refused\n",
    )
    refused = federation.fedctl("--token", "not-a-token", "get", "ns")
    assert (refused.returncode, refused.stderr) == (
        1,
        "error: the federation refused the token (401 Unauthorized)\n",
    )
    unknown = federation.fedctl("get", "deployments")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith('error: the federation has no resource type "deployments"')
    running = federation.running
    explicit = federation.fedctl(
        "--server", running.url, "--token", running.admin_token,
        "--certificate-authority", str(running.ca_file), "get", "clusters", kubeconfig=False,
    )  # fmt: skip
    assert explicit.returncode == 0, explicit
    assert re.search(r"^us-central1\s+https://", explicit.stdout, re.M), explicit
    for done in (down, refused, unknown):
        assert "Traceback" not in done.stderr


def test_every_client_command_has_an_example(federation: Federation) -> None:
    for command in ("apply", "get"):
        assert "Example: fedctl " in federation.ok(command, "--help")
