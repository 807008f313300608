"""``kubectl create namespace|secret|service`` against a simulated cluster, with every kubectl at hand.

kubectl 1.32 and 1.36 send these objects as Kubernetes protobuf and do not fall back to JSON; 1.27
sends JSON. Each test checks which one kubectl sent (``-v=8``), then reads the object back with
``kubectl get -o json``. The raw-HTTP tests cover what kubectl does not do: an update (PUT) in protobuf,
and the 415 for a kind the server does not read from protobuf.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation.apimachinery.certificates import generate_bundle
from federation.sim import Simulator
from tests.sim_support import ca_context
from tests.tools import KUBECTL_VERSIONS, kubectl_binary
from tests.unit.test_protobuf import entry, envelope, ld, meta, text

pytestmark = pytest.mark.e2e

PROTOBUF = "application/vnd.kubernetes.protobuf"
CLUSTER = "us-central1"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    kubeconfig = tmp_path_factory.mktemp("kubectl-create") / "sim.kubeconfig"
    with Simulator([CLUSTER], kubeconfig=kubeconfig, nodes=1, pods_per_node=5, start_delay=0.1) as running:
        yield running


class Kubectl:
    def __init__(self, which: str, kubeconfig: Path, home: Path) -> None:
        self.binary = kubectl_binary(which)
        self.slug = which.replace(".", "-")  # for names of the objects each version makes
        self.sends_protobuf = which != "1.27"
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=20
        )

    def create(self, *args: str) -> tuple[str, bool]:
        """Run ``kubectl create ARGS``; its output and whether it sent the object as protobuf."""
        done = self.run("create", *args, "-v=8")
        assert done.returncode == 0, f"kubectl create {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout, f"Content-Type: {PROTOBUF}" in done.stderr

    def get_json(self, *args: str) -> Any:
        done = self.run("get", *args, "-o", "json")
        assert done.returncode == 0, f"kubectl get {' '.join(args)} failed:\n{done.stderr}"
        return json.loads(done.stdout)


def decoded(data: dict[str, str]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in data.items()}


@pytest.fixture(params=KUBECTL_VERSIONS)
def kubectl(request: pytest.FixtureRequest, sim: Simulator, tmp_path: Path) -> Kubectl:
    return Kubectl(request.param, sim.kubeconfig, tmp_path)


def test_create_namespace(kubectl: Kubectl) -> None:
    ns = f"create-ns-{kubectl.slug}"
    out, protobuf = kubectl.create("namespace", ns)
    assert out.strip() == f"namespace/{ns} created"
    assert protobuf == kubectl.sends_protobuf
    got = kubectl.get_json("namespace", ns)
    assert got["metadata"]["name"] == ns
    assert got["metadata"]["creationTimestamp"]
    assert got["status"]["phase"] == "Active"


def test_create_secrets(kubectl: Kubectl, tmp_path: Path) -> None:
    ns = f"create-secret-{kubectl.slug}"
    kubectl.create("namespace", ns)

    out, protobuf = kubectl.create(
        "secret", "generic", "db", "-n", ns,
        "--from-literal=password=hunter2", "--from-literal=empty=", "--from-literal=greeting=héllo wörld",
    )  # fmt: skip
    assert out.strip() == "secret/db created"
    assert protobuf == kubectl.sends_protobuf
    secret = kubectl.get_json("secret", "db", "-n", ns)
    assert secret["type"] == "Opaque"
    assert decoded(secret["data"]) == {
        "password": b"hunter2",
        "empty": b"",
        "greeting": "héllo wörld".encode(),
    }

    bundle = generate_bundle()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(bundle.cert_pem)
    key.write_bytes(bundle.key_pem)
    out, protobuf = kubectl.create("secret", "tls", "web-tls", "-n", ns, f"--cert={cert}", f"--key={key}")
    assert out.strip() == "secret/web-tls created"
    assert protobuf == kubectl.sends_protobuf
    secret = kubectl.get_json("secret", "web-tls", "-n", ns)
    assert secret["type"] == "kubernetes.io/tls"
    assert decoded(secret["data"]) == {"tls.crt": bundle.cert_pem, "tls.key": bundle.key_pem}

    out, _ = kubectl.create(
        "secret", "docker-registry", "pull", "-n", ns,
        "--docker-server=registry.example.com", "--docker-username=u", "--docker-password=p",
    )  # fmt: skip
    assert out.strip() == "secret/pull created"
    secret = kubectl.get_json("secret", "pull", "-n", ns)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(decoded(secret["data"])[".dockerconfigjson"])
    assert config["auths"]["registry.example.com"]["username"] == "u"

    again = kubectl.run("create", "secret", "generic", "db", "-n", ns, "--from-literal=a=b")
    assert again.returncode != 0
    assert 'secrets "db" already exists' in again.stderr


def test_create_services(kubectl: Kubectl) -> None:
    ns = f"create-svc-{kubectl.slug}"
    kubectl.create("namespace", ns)
    out, protobuf = kubectl.create(
        "service", "clusterip", "web", "-n", ns, "--tcp=80:8080", "--tcp=443:https"
    )
    assert out.strip() == "service/web created"
    assert protobuf == kubectl.sends_protobuf
    service = kubectl.get_json("service", "web", "-n", ns)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"app": "web"}
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in service["spec"]["ports"]] == [
        (80, 8080, "TCP"),
        (443, "https", "TCP"),
    ]
    assert service["spec"]["clusterIP"]

    kubectl.create("service", "externalname", "docs", "-n", ns, "--external-name=docs.example.com")
    service = kubectl.get_json("service", "docs", "-n", ns)
    assert (service["spec"]["type"], service["spec"]["externalName"]) == ("ExternalName", "docs.example.com")


# ---------------------------------------------------------------------------- raw HTTP


class Api:
    """Plain HTTPS requests to the simulated cluster, with its token and CA."""

    def __init__(self, kubeconfig: Path) -> None:
        doc = yaml.safe_load(kubeconfig.read_text())
        self.server = next(c for c in doc["clusters"] if c["name"] == CLUSTER)["cluster"]["server"]
        self.token = next(u for u in doc["users"] if u["name"] == CLUSTER)["user"]["token"]
        self.tls = ca_context(kubeconfig, CLUSTER)

    def send(self, method: str, path: str, body: bytes, content_type: str = PROTOBUF) -> tuple[int, str, Any]:
        request = urllib.request.Request(
            self.server + path,
            data=body,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": content_type,
                "Accept": f"{PROTOBUF},application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=10) as response:
                return response.status, response.headers["Content-Type"], json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, err.headers["Content-Type"], json.loads(err.read())


def test_update_in_protobuf_and_json_answers(sim: Simulator) -> None:
    api = Api(sim.kubeconfig)
    create = envelope("v1", "Secret", ld(1, meta("app", "default")) + entry(2, "token", b"one"))
    code, content_type, created = api.send("POST", "/api/v1/namespaces/default/secrets", create)
    assert (code, content_type) == (201, "application/json")
    assert created["data"] == {"token": base64.b64encode(b"one").decode()}

    rv = created["metadata"]["resourceVersion"]
    update = envelope(
        "v1",
        "Secret",
        ld(1, text(1, "app") + text(3, "default") + text(6, rv) + entry(11, "rotated", b"yes"))
        + entry(2, "token", b"two"),
    )
    code, _, updated = api.send("PUT", "/api/v1/namespaces/default/secrets/app", update)
    assert code == 200, updated
    assert updated["data"] == {"token": base64.b64encode(b"two").decode()}
    assert updated["metadata"]["labels"] == {"rotated": "yes"}

    code, _, stale = api.send("PUT", "/api/v1/namespaces/default/secrets/app", update)
    assert (code, stale["reason"]) == (409, "Conflict")


def test_protobuf_the_server_does_not_read_gets_415(sim: Simulator) -> None:
    api = Api(sim.kubeconfig)
    config_map = envelope("v1", "ConfigMap", ld(1, meta("cm", "default")) + entry(2, "a", b"b"))
    code, _, status = api.send("POST", "/api/v1/namespaces/default/secrets", config_map)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    assert "v1/ConfigMap is not read from protobuf" in status["message"]
    assert "send the object as JSON" in status["message"]

    code, _, status = api.send("POST", "/api/v1/namespaces", b"k8s\x00\x0a\xff\xff")
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    assert "malformed" in status["message"]

    code, _, status = api.send("POST", "/api/v1/namespaces", b"<xml/>", content_type="application/xml")
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
