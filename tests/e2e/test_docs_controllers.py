"""docs/federation.md runs as written: the federation, three simulated regions, a region down and back.

The page's ``sh`` blocks are, in order: ``fedctl up --data-dir ./data`` (terminal 1), ``fedctl sim up
...`` (terminal 2), then the blocks of terminal 3. The first two run until Ctrl-C, so this test starts
them as background processes (``fedctl up`` through :func:`tests.servers.start_federation`, which adds
``--port 0`` and the test's database, so that runs side by side never collide); the others run
unchanged, in one bash (``set -euo pipefail``: a command that fails fails the test), in the same
directory, with the real ``fedctl`` and ``kubectl``. What a user would see is checked per block:
the clusters Ready, 2/2/2 replicas across the three members, 3/3 in the two left after ``down``, and
everything Ready again after ``heal``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.sim import READY_LINE
from tests.servers import FEDCTL, RunningFederation, start_federation
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "federation.md"
BIN = Path(sys.executable).parent
MARK = "=== block "


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    (_, sim_up, *_) = sh_blocks()
    args = shlex.split(sim_up.strip())
    assert args[:3] == ["fedctl", "sim", "up"], sim_up
    log = tmp_path / "sim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([FEDCTL, *args[1:]], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while READY_LINE not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def federation(
    tmp_path: Path, database_url: str, simulator: subprocess.Popen[bytes]
) -> Iterator[RunningFederation]:
    (up, *_) = sh_blocks()
    assert up.strip() == "fedctl up --data-dir ./data"
    running = start_federation(tmp_path / "data", database_url=database_url, controllers=True)
    try:
        yield running
    finally:
        running.stop()  # before the simulator, which the fixture order stops last


def run_steps(tmp_path: Path, steps: list[str]) -> list[str]:
    """The blocks in one bash; what each printed."""
    script = ["set -euo pipefail"]
    for number, block in enumerate(steps):
        script += [f"echo '{MARK}{number}'", block]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "HOME": str(tmp_path)}
    env.pop("KUBECONFIG", None)
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    outputs = re.split(rf"^{MARK}\d+\n", done.stdout, flags=re.M)[1:]
    assert len(outputs) == len(steps)
    return outputs


def rs_lines(output: str, replicas: int) -> int:
    """How many `kubectl get rs` lines show web at ``replicas`` desired, current and ready."""
    return len(re.findall(rf"^web\s+{replicas}\s+{replicas}\s+{replicas}\s", output, flags=re.M))


def test_the_walkthrough_runs_as_written(tmp_path: Path, federation: RunningFederation) -> None:
    require_tool("kubectl", "docs/federation.md drives it")
    started = time.monotonic()
    (_, _, *steps) = sh_blocks()
    register, apply, members, down, heal = run_steps(tmp_path, steps)
    print(f"walkthrough ran in {time.monotonic() - started:.1f} s")

    for cluster in ("us-central1", "europe-west1", "asia-east1"):
        ready = rf"^{cluster}\s+https://127\.0\.0\.1:\d+\s+{cluster}\s+True\s"
        assert re.search(ready, register, re.M), register
    assert "asia-east1=2/2 europe-west1=2/2 us-central1=2/2" in apply, apply
    assert "shop-db-secret" in apply
    assert "shop-namespace" in apply
    assert "readyReplicas: 6" in members
    assert rs_lines(members, 2) == 3, members

    assert re.search(r"^us-central1\s+\S+\s+us-central1\s+False\s", down, re.M), down
    assert "asia-east1=3/3 europe-west1=3/3 us-central1(Stale)" in down, down
    assert rs_lines(down, 3) == 2, down

    assert re.search(r"^web-replicaset\s+ReplicaSet\s+6\s", heal, re.M), heal
    assert "(Stale)" not in heal
    for cluster in ("us-central1", "europe-west1", "asia-east1"):
        assert f'federation_cluster_ready{{cluster="{cluster}"}} 1.0' in heal, heal
