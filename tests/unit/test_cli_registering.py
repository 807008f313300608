"""``fedctl cluster join``'s pure part: a member's kubeconfig read into credentials, the Secret and
Cluster that register it (read back by the controllers' own reader), and ``cluster list``'s rows."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation.apimachinery import generate_bundle
from federation.cli.registering import (
    JoinError,
    age,
    cluster_row,
    member_credentials,
    parse_labels,
    region_from_nodes,
    registration,
)
from federation.members import Credentials, credentials_from_secret

BUNDLE = generate_bundle()
TOKEN = "t0ken-never-printed"
SERVER = "https://127.0.0.1:6443"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any], *, current: str = "m") -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": SERVER, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "m", "context": {"cluster": "c", "user": "u"}}],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_token_and_inline_ca(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", {"certificate-authority-data": b64(BUNDLE.ca_pem)}, {"token": TOKEN})
    name, creds = member_credentials(path)
    assert name == "m"
    assert creds == Credentials(server=SERVER, token=TOKEN, ca_pem=BUNDLE.ca_pem.decode())


def test_client_certificate_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(BUNDLE.ca_pem)
    (tmp_path / "pki" / "me.crt").write_bytes(BUNDLE.cert_pem)
    (tmp_path / "pki" / "me.key").write_bytes(BUNDLE.key_pem)
    path = kubeconfig(
        tmp_path / "kc",
        {"certificate-authority": "pki/ca.crt"},
        {"client-certificate": "pki/me.crt", "client-key": "pki/me.key"},
    )
    _, creds = member_credentials(path, "m")
    assert creds.token is None
    assert creds.client_cert_pem == BUNDLE.cert_pem.decode()
    assert creds.client_key_pem == BUNDLE.key_pem.decode()
    assert creds.ca_pem == BUNDLE.ca_pem.decode()


def test_inline_client_certificate_and_insecure(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        {"insecure-skip-tls-verify": True},
        {"client-certificate-data": b64(BUNDLE.cert_pem), "client-key-data": b64(BUNDLE.key_pem)},
    )
    _, creds = member_credentials(path)
    assert creds.insecure_skip_tls_verify
    assert creds.ca_pem is None


@pytest.mark.parametrize(
    ("cluster", "user", "context", "message"),
    [
        ({}, {"token": TOKEN}, None, "no certificate authority"),
        ({"insecure-skip-tls-verify": True}, {}, None, "neither a token nor a client certificate"),
        ({"insecure-skip-tls-verify": True}, {"exec": {"command": "gke-gcloud-auth-plugin"}}, None, "exec"),
        (
            {"insecure-skip-tls-verify": True},
            {"client-certificate-data": b64(BUNDLE.cert_pem)},
            None,
            "needs its key",
        ),
        ({"insecure-skip-tls-verify": True}, {"token": TOKEN}, "nope", "context 'nope' not found"),
        ({"certificate-authority-data": "!!"}, {"token": TOKEN}, None, "not valid base64"),
        (
            {"certificate-authority": "missing.crt"},
            {"token": TOKEN},
            None,
            "cannot read certificate-authority",
        ),
    ],
    ids=[
        "no-ca",
        "no-user",
        "exec-plugin",
        "cert-without-key",
        "unknown-context",
        "bad-base64",
        "ca-file-missing",
    ],
)
def test_refusals_are_one_line_without_the_token(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], context: str | None, message: str
) -> None:
    path = kubeconfig(tmp_path / "kc", cluster, user)
    with pytest.raises(JoinError) as caught:
        member_credentials(path, context)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "creds",
    [
        Credentials(server=SERVER, token=TOKEN, ca_pem=BUNDLE.ca_pem.decode()),
        Credentials(
            server=SERVER,
            client_cert_pem=BUNDLE.cert_pem.decode(),
            client_key_pem=BUNDLE.key_pem.decode(),
            insecure_skip_tls_verify=True,
        ),
        Credentials(server="http://127.0.0.1:8080", token=TOKEN),
    ],
    ids=["token-ca", "cert-insecure", "plain-http"],
)
def test_the_registration_reads_back_as_the_same_credentials(creds: Credentials) -> None:
    secret, cluster = registration("east", creds, {"topology.kubernetes.io/region": "us-east1"})
    assert secret["metadata"] == {"name": "east-credentials", "namespace": "federation-system"}
    assert cluster["spec"] == {"server": creds.server, "secretRef": {"name": "east-credentials"}}
    assert cluster["metadata"]["labels"] == {"topology.kubernetes.io/region": "us-east1"}
    assert credentials_from_secret(cluster, secret) == creds


def test_labels() -> None:
    assert parse_labels(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(JoinError, match="key=value"):
        parse_labels(["novalue"])


@pytest.mark.parametrize(
    ("regions", "region"),
    [(("us-east1",), "us-east1"), ((), None), (("a", "b"), None)],
    ids=["one", "none", "several"],
)
def test_region_from_nodes(regions: tuple[str, ...], region: str | None) -> None:
    found, said = region_from_nodes(regions)
    assert found == region
    assert said.startswith("region")


NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)


def cluster_obj(*, ready: str | None, reason: str = "", cordoned: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"kubernetesVersion": "v1.32.4", "capacity": {"nodes": 3, "pods": 30}}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready, "reason": reason}]
    return {
        "metadata": {
            "name": "east",
            "labels": {"topology.kubernetes.io/region": "us-east1"},
            "creationTimestamp": "2026-01-02T11:55:00Z",
        },
        "spec": {"server": SERVER, "unschedulable": cordoned},
        "status": status,
    }


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        (cluster_obj(ready="True"), "Ready"),
        (cluster_obj(ready="False", reason="ConnectionRefused"), "Offline (ConnectionRefused)"),
        (cluster_obj(ready=None), "Unknown"),
        (cluster_obj(ready="True", cordoned=True), "Ready,SchedulingDisabled"),
    ],
    ids=["ready", "offline", "unknown", "cordoned"],
)
def test_cluster_rows(obj: dict[str, Any], status: str) -> None:
    assert cluster_row(obj, NOW) == ("east", "us-east1", status, "v1.32.4", "3", "5m")


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (119, "119s"), (300, "5m"), (7200, "2h"), (3 * 86400, "3d")]
)
def test_age(seconds: int, text: str) -> None:
    created = datetime.fromtimestamp(NOW.timestamp() - seconds, UTC).isoformat().replace("+00:00", "Z")
    assert age(created, NOW) == text
