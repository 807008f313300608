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


def test_two_simulator_processes_serve_their_own_clusters_side_by_side(tmp_path: Path) -> None:
    """How a benchmark spreads a fleet over processes: disjoint names, one kubeconfig each, and
    ``first_index`` so the clusters get the addresses one process would have given them."""
    east, west = tmp_path / "east.kubeconfig", tmp_path / "west.kubeconfig"
    with (
        SimulatorProcess(["east-1", "east-2"], kubeconfig=east, nodes=1) as first,
        SimulatorProcess(["west-1"], kubeconfig=west, nodes=1, first_index=2) as second,
    ):
        east_control, west_control = first.control(), second.control()
        assert east_control.server != west_control.server
        assert [c["name"] for c in east_control.clusters()] == ["east-1", "east-2"]
        assert [c["name"] for c in west_control.clusters()] == ["west-1"]
        servers = {c["server"] for c in [*east_control.clusters(), *west_control.clusters()]}
        assert len(servers) == 3
        node_ips: set[str] = set()
        for kubeconfig, name in ((east, "east-1"), (east, "east-2"), (west, "west-1")):
            with api_client(kubeconfig, name) as api:
                for node in client.CoreV1Api(api).list_node().items:
                    assert node.status is not None
                    addresses = node.status.addresses or []
                    node_ips.update(a.address for a in addresses if a.type == "InternalIP")
        assert node_ips == {"10.240.0.2", "10.240.1.2", "10.240.2.2"}

        with pytest.raises(ControlError, match="no simulated cluster"):
            east_control.fail("west-1", Fault("down"))
        west_control.fail("west-1", Fault("down"))
        with api_client(west, "west-1") as api, pytest.raises(NewConnectionError):
            client.CoreV1Api(api).list_namespace(_request_timeout=2)
        with api_client(east, "east-1") as api:
            assert client.CoreV1Api(api).list_namespace(_request_timeout=5).items
        west_control.heal("west-1")
        with api_client(west, "west-1") as api:
            assert client.CoreV1Api(api).list_namespace(_request_timeout=5).items
        assert first.stop() == 0
        with api_client(west, "west-1") as api:
            assert client.CoreV1Api(api).list_namespace(_request_timeout=5).items


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
