"""Kubeconfig files: written 0600, read back equal, and understood by the official client."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from federation.apimachinery.certificates import generate_bundle
from federation.apimachinery.kubeconfig import (
    Kubeconfig,
    KubeconfigError,
    KubeContext,
    read_kubeconfig,
    write_kubeconfig,
)


@pytest.fixture
def two_contexts() -> Kubeconfig:
    ca = generate_bundle().ca_pem
    return Kubeconfig(
        (
            KubeContext("us-central1", "https://127.0.0.1:6443", ca_pem=ca, token="t1"),
            KubeContext("asia-east1", "https://127.0.0.1:6444", ca_pem=ca, token="t2", namespace="shop"),
        ),
        current_context="asia-east1",
        extensions={"example.io/thing": {"server": "https://127.0.0.1:1", "token": "x"}},
    )


def test_round_trip_and_mode(tmp_path: Path, two_contexts: Kubeconfig) -> None:
    path = tmp_path / "deep" / "sim.kubeconfig"
    write_kubeconfig(path, two_contexts)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_kubeconfig(path) == two_contexts
    doc = yaml.safe_load(path.read_text())
    assert doc["kind"] == "Config"
    assert doc["current-context"] == "asia-east1"
    assert [c["name"] for c in doc["contexts"]] == ["us-central1", "asia-east1"]


def test_overwrite_keeps_mode_0600_even_if_loosened(tmp_path: Path, two_contexts: Kubeconfig) -> None:
    path = tmp_path / "k"
    write_kubeconfig(path, two_contexts)
    path.chmod(0o644)
    write_kubeconfig(path, two_contexts)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_official_client_reads_every_context(tmp_path: Path, two_contexts: Kubeconfig) -> None:
    path = tmp_path / "k"
    write_kubeconfig(path, two_contexts)
    contexts, active = config.list_kube_config_contexts(config_file=str(path))
    assert [c["name"] for c in contexts] == ["us-central1", "asia-east1"]
    assert active["name"] == "asia-east1"
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), context="us-central1", client_configuration=configuration)
    assert configuration.host == "https://127.0.0.1:6443"
    assert configuration.api_key["BearerToken"] == "Bearer t1"


def test_reads_ca_and_token_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    ca = generate_bundle().ca_pem
    (tmp_path / "ca.crt").write_bytes(ca)
    (tmp_path / "token").write_text("secret-token\n")
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://x", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    (tmp_path / "k").write_text(yaml.safe_dump(doc))
    ctx = read_kubeconfig(tmp_path / "k").context()
    assert (ctx.server, ctx.ca_pem, ctx.token) == ("https://x", ca, "secret-token")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("contexts:\n- name: x\n  context: {cluster: nope}\n", "unknown cluster"),
        (
            "clusters:\n- name: c\n  cluster: {server: s, certificate-authority-data: '!!'}\n"
            "contexts:\n- name: x\n  context: {cluster: c}\n",
            "bad certificate-authority-data",
        ),
    ],
    ids=["bad-yaml", "not-a-mapping", "unknown-cluster", "bad-ca-data"],
)
def test_bad_files_are_reported(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "k").write_text(text)
    with pytest.raises(KubeconfigError, match=message):
        read_kubeconfig(tmp_path / "k")


def test_missing_file_and_unknown_context(tmp_path: Path, two_contexts: Kubeconfig) -> None:
    with pytest.raises(KubeconfigError, match="cannot read"):
        read_kubeconfig(tmp_path / "absent")
    with pytest.raises(KubeconfigError, match="not found"):
        two_contexts.context("europe-west1")


def test_duplicate_or_dangling_names_are_refused(tmp_path: Path) -> None:
    ctx = KubeContext("a", "https://x")
    with pytest.raises(KubeconfigError, match="unique"):
        write_kubeconfig(tmp_path / "k", Kubeconfig((ctx, ctx)))
    with pytest.raises(KubeconfigError, match="current context"):
        write_kubeconfig(tmp_path / "k", Kubeconfig((ctx,), current_context="b"))
    assert not (tmp_path / "k").exists()


def test_ca_is_base64_in_the_file(tmp_path: Path, two_contexts: Kubeconfig) -> None:
    write_kubeconfig(tmp_path / "k", two_contexts)
    doc = yaml.safe_load((tmp_path / "k").read_text())
    data = doc["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(data) == two_contexts.contexts[0].ca_pem
