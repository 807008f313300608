"""``fedctl sim`` commands against an in-process simulator (typer's runner), and their error paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from federation.cli.sim import app
from federation.sim import Simulator

runner = CliRunner()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    kubeconfig = tmp_path_factory.mktemp("cli") / "sim.kubeconfig"
    with Simulator(["us-central1", "asia-east1"], kubeconfig=kubeconfig, nodes=2) as running:
        yield running


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_fail_heal_nodes_and_status(sim: Simulator) -> None:
    kc = str(sim.kubeconfig)
    assert invoke(
        "fail", "asia-east1", "--mode", "error", "--status", "429", "--retry-after", "4", "--kubeconfig", kc
    )[:2] == (0, "cluster asia-east1: error\n")
    code, out, _ = invoke("status", "--kubeconfig", kc, "-o", "json")
    assert code == 0
    clusters = {c["name"]: c for c in json.loads(out)}
    assert clusters["asia-east1"]["fault"] == {"mode": "error", "status": 429, "retryAfter": 4}
    assert clusters["us-central1"]["fault"] is None
    code, out, _ = invoke("status", "--kubeconfig", kc)
    assert out.splitlines()[0].split() == ["CLUSTER", "REGION", "NODES", "FAULT", "SERVER"]
    assert invoke("heal", "asia-east1", "--kubeconfig", kc)[:2] == (0, "cluster asia-east1: healed\n")
    assert sim.cluster("asia-east1").faults.fault is None
    assert invoke("nodes", "us-central1", "5", "--kubeconfig", kc)[:2] == (
        0,
        "cluster us-central1: 5 nodes\n",
    )
    assert sim.cluster("us-central1").workload.node_count == 5


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["fail", "nowhere", "--mode", "down"], 1, "no simulated cluster named 'nowhere'"),
        (["fail", "asia-east1", "--mode", "melt"], 2, "unknown fault mode"),
        (["fail", "asia-east1", "--mode", "error", "--status", "404"], 2, "error status must be one of"),
        (["status", "-o", "yaml"], 2, "--output must be table or json"),
    ],
    ids=["unknown-cluster", "unknown-mode", "bad-status", "bad-output"],
)
def test_errors_are_one_readable_line(sim: Simulator, args: list[str], code: int, message: str) -> None:
    got, _, err = invoke(*args, "--kubeconfig", str(sim.kubeconfig))
    assert got == code
    assert message in err
    assert err.startswith("error: ")


def test_commands_need_a_simulator_kubeconfig(tmp_path: Path) -> None:
    plain = tmp_path / "config"
    plain.write_text("apiVersion: v1\nkind: Config\n")
    code, _, err = invoke("heal", "x", "--kubeconfig", str(plain))
    assert code == 1
    assert "not written by a running simulator" in err
    code, _, err = invoke("up", "--clusters", "Bad_Name", "--kubeconfig", str(tmp_path / "new"))
    assert code == 1
    assert "lowercase DNS label" in err
