"""Real kubectl against ``fedctl up``, with the kubeconfig it writes and no extra flags."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.servers import RunningFederation, start_federation
from tests.tools import KUBECTL_VERSIONS, kubectl_binary

MANIFESTS = Path(__file__).parent / "manifests"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[RunningFederation]:
    running = start_federation(tmp_path_factory.mktemp("fed"), database_url=database_url)
    yield running
    running.stop()


@pytest.fixture(params=KUBECTL_VERSIONS)
def binary(request: pytest.FixtureRequest) -> Path:
    return kubectl_binary(request.param)


def run(binary: Path, federation: RunningFederation, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(federation.kubeconfig), "HOME": str(federation.data_dir)}
    done = subprocess.run([binary, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_kubectl_workflow(federation: RunningFederation, binary: Path, tmp_path: Path) -> None:
    def kubectl(_: RunningFederation, *args: str, stdin: str | None = None) -> str:
        return run(binary, federation, *args, stdin=stdin)

    assert "default" in kubectl(federation, "get", "ns")
    out = kubectl(federation, "apply", "-f", str(MANIFESTS / "app.yaml"))
    assert "namespace/shop created" in out
    assert "secret/shop-db created" in out
    assert "replicaset.apps/frontend created" in out

    secret = json.loads(kubectl(federation, "get", "secret", "shop-db", "-n", "shop", "-o", "json"))
    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"

    # apply again with a changed field: one image and the replica count
    changed = (
        (MANIFESTS / "app.yaml")
        .read_text()
        .replace("nginx:1.27", "nginx:1.28")
        .replace("replicas: 3", "replicas: 4")
    )
    changed_file = tmp_path / "app.yaml"
    changed_file.write_text(changed)
    out = kubectl(federation, "apply", "-f", str(changed_file))
    assert "replicaset.apps/frontend configured" in out
    assert "namespace/shop unchanged" in out

    rs = yaml.safe_load(kubectl(federation, "get", "rs", "frontend", "-n", "shop", "-o", "yaml"))
    assert rs["spec"]["replicas"] == 4
    images = {c["name"]: c["image"] for c in rs["spec"]["template"]["spec"]["containers"]}
    assert images == {"web": "nginx:1.28", "sidecar": "busybox:1.36"}
    assert rs["metadata"]["generation"] == 2

    assert "scaled" in kubectl(federation, "scale", "rs", "frontend", "-n", "shop", "--replicas=6")
    assert (
        json.loads(kubectl(federation, "get", "rs", "frontend", "-n", "shop", "-o", "json"))["spec"][
            "replicas"
        ]
        == 6
    )

    kubectl(federation, "label", "rs", "frontend", "-n", "shop", "tier=web")
    kubectl(federation, "annotate", "rs", "frontend", "-n", "shop", "owner=team-a")
    rs = json.loads(kubectl(federation, "get", "rs", "frontend", "-n", "shop", "-o", "json"))
    assert rs["metadata"]["labels"]["tier"] == "web"
    assert rs["metadata"]["annotations"]["owner"] == "team-a"

    table = kubectl(federation, "get", "rs", "-n", "shop")
    assert table.split("\n")[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert "frontend" in kubectl(federation, "get", "rs", "-n", "shop", "-l", "tier=web")

    kubectl(
        federation,
        "create",
        "-n",
        "shop",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "frontend.1"},
                "involvedObject": {"kind": "ReplicaSet", "name": "frontend", "namespace": "shop"},
                "reason": "Placed",
                "message": "3 replicas in asia-east1",
                "type": "Normal",
            }
        ),
    )
    events = kubectl(federation, "get", "events", "-n", "shop")
    assert "Placed" in events
    assert "replicaset/frontend" in events

    resources = kubectl(federation, "api-resources")
    for line in ("replicasets", "secrets", "namespaces", "events", "clusters"):
        assert line in resources

    out = kubectl(federation, "delete", "-f", str(MANIFESTS / "app.yaml"))
    assert 'namespace "shop" deleted' in out
    assert 'secret "shop-db" deleted' in out
    assert 'replicaset.apps "frontend" deleted' in out
    # kubectl delete waits for the namespace to go; it is gone for the next reader too
    assert "shop" not in kubectl(federation, "get", "ns", "-o", "name")


def test_kubectl_rejects_unknown_fields_like_kubernetes(
    federation: RunningFederation, binary: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\n  namespace: default\nbogus: 1\n")
    env = {**os.environ, "KUBECONFIG": str(federation.kubeconfig)}
    done = subprocess.run([binary, "apply", "-f", str(bad)], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert 'unknown field "bogus"' in done.stderr
    missing = subprocess.run(
        [binary, "get", "secret", "bad", "-n", "default"], env=env, capture_output=True, text=True
    )
    assert missing.returncode != 0
