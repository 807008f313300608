"""``fedctl cluster``, ``spread`` and ``plan`` as an operator runs them against a real federation.

``fedctl up`` (the module's database) and three simulated member clusters; every command is the
installed ``fedctl`` as a subprocess with the kubeconfig ``fedctl up`` wrote, and every check reads
what a user reads (stdout, the one stderr line, the exit code). The members are joined by ``fedctl
cluster join`` from the simulator's kubeconfig (nothing registered by hand); the app is created
through the API, so these checks do not lean on ``fedctl apply``.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from federation.sim import Simulator
from tests.servers import FEDCTL, RunningFederation, start_federation
from tests.sim_support import api_client, wait_until

pytestmark = pytest.mark.e2e

CLUSTERS = ["a", "b", "c"]
PREFS = "federation.kubernetes.io/replica-set-preferences"


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "annotations": {PREFS: '{"clusters": {"*": {"weight": 1}}}'},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]},
            },
        },
    }


@dataclass
class Setup:
    running: RunningFederation
    sim: Simulator
    folder: Path

    def fedctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FEDCTL, "--kubeconfig", str(self.running.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str) -> str:
        done = self.fedctl(*args)
        assert done.returncode == 0, (
            f"fedctl {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout

    def api(self, method: str, path: str, body: Any = None) -> Any:
        with self.running.client(self.running.admin_token) as http:
            answer = http.request(method, path, json=body)
        assert answer.status_code < 300, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("fedctl-clusters")
    with Simulator(CLUSTERS, kubeconfig=folder / "sim.kubeconfig", start_delay=0.2) as sim:
        running = start_federation(folder / "data", database_url=database_url, controllers=True)
        try:
            yield Setup(running, sim, folder)
        finally:
            running.stop()


def rows(text: str) -> dict[str, list[str]]:
    """First word of each line -> the rest, split on runs of two or more spaces."""
    return {
        line.split()[0]: re.split(r"\s{2,}", line.strip())[1:] for line in text.splitlines() if line.strip()
    }


def test_join_list_spread_plan_cordon_unjoin(setup: Setup) -> None:
    kubeconfig = str(setup.sim.kubeconfig)
    # join: credentials from the member's kubeconfig, region from its nodes or from --label
    said = setup.ok("cluster", "join", "a", "--cluster-kubeconfig", kubeconfig, "--cluster-context", "a")
    assert re.fullmatch(
        r'cluster "a" joined: https://127\.0\.0\.1:\d+ with token; region a \(from the member\'s nodes\)\n',
        said,
    )
    setup.ok("cluster", "join", "b", "--cluster-kubeconfig", kubeconfig, "--cluster-context", "b")
    said = setup.ok(
        "cluster", "join", "c", "--cluster-kubeconfig", kubeconfig, "--cluster-context", "c",
        "--label", "topology.kubernetes.io/region=region-c", "--label", "tier=gold",
    )  # fmt: skip
    assert "region region-c (from --label)" in said
    token = setup.sim.cluster("a").kube_context().token
    assert token
    again = setup.fedctl("cluster", "join", "a", "--cluster-kubeconfig", kubeconfig, "--cluster-context", "a")
    assert again.returncode == 1
    assert again.stderr.startswith('error: cluster "a" is already joined'), again.stderr

    # an unreachable member is refused with the reason; --force registers it anyway
    dead = setup.folder / "dead.kubeconfig"
    dead.write_text(
        re.sub(
            r"server: https://127\.0\.0\.1:\d+", "server: https://127.0.0.1:9", Path(kubeconfig).read_text()
        )
    )
    refused = setup.fedctl(
        "cluster", "join", "dead", "--cluster-kubeconfig", str(dead), "--cluster-context", "a"
    )
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "error: cluster dead at https://127.0.0.1:9 does not answer: connection refused "
        "(--force registers it anyway)"
    ]
    forced = setup.ok(
        "cluster", "join", "dead", "--cluster-kubeconfig", str(dead), "--cluster-context", "a", "--force"
    )
    assert 'cluster "dead" joined' in forced
    for out in (said, again.stdout, again.stderr, refused.stderr, forced):
        assert token not in out

    # list: every member Ready, the forced one Offline with its reason
    def listed() -> dict[str, list[str]] | None:
        found = rows(setup.ok("cluster", "list"))
        ready = all(found.get(n, ["", ""])[1] == "Ready" for n in CLUSTERS)
        return found if ready and found.get("dead", ["", ""])[1].startswith("Offline") else None

    found = wait_until(listed, within=30, interval=0.5, what="clusters Ready, dead Offline")
    assert found["NAME"] == ["REGION", "STATUS", "VERSION", "NODES", "AGE"]
    assert found["a"][:4] == ["a", "Ready", "v1.32.4-sim", "3"]
    assert found["c"][:2] == ["region-c", "Ready"]
    assert found["dead"][:2] == ["<none>", "Offline (ConnectionRefused)"]
    as_yaml = yaml.safe_load(setup.ok("cluster", "get", "c", "-o", "yaml"))
    assert as_yaml["metadata"]["labels"] == {"tier": "gold", "topology.kubernetes.io/region": "region-c"}
    assert as_yaml["spec"]["secretRef"] == {"name": "c-credentials"}
    setup.ok("cluster", "unjoin", "dead", "--keep-member-objects")

    # an app, through the API; spread shows 2/2 in each cluster
    setup.api("POST", "/api/v1/namespaces", {"metadata": {"name": "shop"}})
    setup.api("POST", "/apis/apps/v1/namespaces/shop/replicasets", replicaset("web", 6))

    def spread_settled() -> dict[str, list[str]] | None:
        found = rows(setup.ok("spread", "-n", "shop"))
        return found if found.get("shop/web") == ["2/2", "2/2", "2/2", "6/6"] else None

    table = wait_until(spread_settled, within=40, interval=0.5, what="web 2/2 everywhere")
    assert table["REPLICASET"] == ["a", "b", "c", "TOTAL"]
    assert table["HEALTH"] == ["Ready", "Ready", "Ready"]
    assert table["TOTAL"] == ["2/2", "2/2", "2/2", "6/6"]

    # plan --fail a: a's replicas go to b and c; nothing is written
    manifest = setup.folder / "web.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, replicaset("web", 6)]
        )
    )
    rs_before = setup.api("GET", "/apis/apps/v1/namespaces/shop/replicasets/web")["metadata"][
        "resourceVersion"
    ]
    pl_path = "/apis/federation.io/v1alpha1/namespaces/shop/placements/web-replicaset"
    pl_before = setup.api("GET", pl_path)["metadata"]["resourceVersion"]
    planned = setup.fedctl("plan", "-f", str(manifest), "--fail", "a")
    assert planned.returncode == 0, planned.stderr
    section = planned.stdout.split("ReplicaSet shop/web (exists, 6 replicas)\n", 1)[1]
    assert rows(section)["CLUSTER"] == ["NOW", "IF a FAILS"]
    assert rows(section)["a"] == ["2", "- (Offline) (-2)"]
    assert rows(section)["b"] == ["2", "3 (+1)"]
    assert rows(section)["c"] == ["2", "3 (+1)"]
    assert rows(section)["UNPLACED"] == ["0", "0"]
    assert "nothing was changed" in planned.stderr
    assert (
        setup.api("GET", "/apis/apps/v1/namespaces/shop/replicasets/web")["metadata"]["resourceVersion"]
        == rs_before
    )
    assert setup.api("GET", pl_path)["metadata"]["resourceVersion"] == pl_before
    unknown = setup.fedctl("plan", "-f", str(manifest), "--fail", "zz")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        2,
        "error: --fail zz: no such cluster (clusters: a, b, c)",
    )

    # cordon c: listed as SchedulingDisabled, and a new ReplicaSet gets nothing there
    assert setup.ok("cluster", "cordon", "c") == 'cluster "c" cordoned\n'
    assert rows(setup.ok("cluster", "list"))["c"][1] == "Ready,SchedulingDisabled"
    setup.api("POST", "/apis/apps/v1/namespaces/shop/replicasets", replicaset("api", 4))

    def api_placed() -> dict[str, list[str]] | None:
        found = rows(setup.ok("spread", "-n", "shop"))
        return found if found.get("shop/api") == ["2/2", "2/2", "-", "4/4"] else None

    table = wait_until(api_placed, within=40, interval=0.5, what="api 2/2 on a and b only")
    assert table["HEALTH"] == ["Ready", "Ready", "Ready,Cordoned"]
    assert setup.ok("cluster", "uncordon", "c") == 'cluster "c" uncordoned\n'

    # unjoin c --yes: the Cluster and its Secret go, and so do the member's federated copies
    refused = setup.fedctl("cluster", "unjoin", "c")
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr
    with api_client(setup.sim.kubeconfig, "c") as member:
        apps = client.AppsV1Api(member)
        wait_until(
            lambda: apps.list_replica_set_for_all_namespaces(label_selector="federation.io/managed-by").items,
            within=30,
            what="copies in c",
        )
        said = setup.ok("cluster", "unjoin", "c", "--yes")
        assert said.startswith('cluster "c" unjoined; removed from the member: '), said
        time.sleep(1.0)
        assert not apps.list_replica_set_for_all_namespaces(label_selector="federation.io/managed-by").items
        assert not client.CoreV1Api(member).list_namespace(label_selector="federation.io/managed-by").items
    assert "c" not in rows(setup.ok("cluster", "list"))
    with setup.running.client(setup.running.admin_token) as http:
        assert http.get("/api/v1/namespaces/federation-system/secrets/c-credentials").status_code == 404
