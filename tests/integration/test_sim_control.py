"""The simulator as its own process, driven through the control API found in its kubeconfig."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client
from urllib3.exceptions import NewConnectionError

from federation.sim import ControlClient, ControlError, Fault, Simulator, SimulatorError, SimulatorProcess
from tests.sim_support import api_client


def test_subprocess_simulator_is_driven_through_its_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "sim.kubeconfig"
    with SimulatorProcess(["us-central1", "asia-east1"], kubeconfig=kubeconfig, nodes=2) as process:
        control = process.control()
        assert [c["name"] for c in control.clusters()] == ["us-central1", "asia-east1"]
        control.fail("asia-east1", Fault("down"))
        with api_client(kubeconfig, "asia-east1") as api:
            with pytest.raises(NewConnectionError):
                client.CoreV1Api(api).list_namespace(_request_timeout=2)
            control.heal("asia-east1")
            assert client.CoreV1Api(api).list_namespace().items
        control.set_nodes("us-central1", 4)
        assert next(c for c in control.clusters() if c["name"] == "us-central1")["nodes"] == 4
        with pytest.raises(ControlError, match="no simulated cluster"):
            control.heal("nowhere")
        with pytest.raises(ControlError, match="between 0 and 250"):
            control.set_nodes("us-central1", 1000)
        with pytest.raises(ControlError, match="unauthorized"):
            ControlClient(control.server, "wrong-token", control.ca_pem).clusters()
        assert process.stop() == 0
    with pytest.raises(ControlError, match="cannot be reached"):
        ControlClient.from_kubeconfig(kubeconfig).clusters()


def test_a_kubeconfig_the_simulator_did_not_write_is_never_overwritten(tmp_path: Path) -> None:
    precious = tmp_path / "config"
    precious.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with pytest.raises(SimulatorError, match="not written by the simulator"):
        Simulator(["a"], kubeconfig=precious).start()
    assert "clusters: []" in precious.read_text()
    done = subprocess.run(
        [sys.executable, "-m", "federation.sim", "--clusters", "a", "--kubeconfig", str(precious)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "not written by the simulator" in done.stderr


def test_cluster_names_are_checked(tmp_path: Path) -> None:
    for bad in (["Upper"], ["a", "a"], [], ["-x"]):
        with pytest.raises(SimulatorError):
            Simulator(bad, kubeconfig=tmp_path / "k")


def test_control_client_needs_the_extension(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(ControlError, match="not written by a running simulator"):
        ControlClient.from_kubeconfig(plain)
