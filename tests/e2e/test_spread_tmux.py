"""``fedctl spread --watch`` on a real terminal shows a failover as it happens.

tmux gives the command a terminal (160x40) on a private tmux server of this test's own; the test
reads the screen with ``capture-pane``, takes a member down with ``fedctl sim fail ... --mode down``
while the table is live, and waits until the screen shows the member Offline, its cell Stale and its
replicas on the two others. The two screens are written to ``tmp_path`` (and, with
``FEDERATION_SPREAD_CAPTURE=FILE``, to FILE: that is how ``docs/spread-failover.txt`` is made).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation.sim import Simulator
from tests.servers import FEDCTL, start_federation
from tests.sim_support import wait_until
from tests.tools import require_tool

pytestmark = pytest.mark.e2e

CLUSTERS = ["us-central1", "europe-west1", "asia-east1"]


def _web() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": 6,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """``tmux -S <socket in tmp_path>``: a tmux server of this test's own, killed at the end."""
    binary = require_tool("tmux", "it gives fedctl spread --watch a real terminal")
    base = [str(binary), "-S", str(tmp_path / "tmux.sock"), "-f", "/dev/null"]
    try:
        yield base
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=10, check=False)


def test_spread_watch_shows_a_failover(tmp_path: Path, database_url: str, tmux: list[str]) -> None:
    kubeconfig = tmp_path / "sim.kubeconfig"
    with Simulator(CLUSTERS, kubeconfig=kubeconfig, start_delay=0.2):
        running = start_federation(tmp_path / "data", database_url=database_url, controllers=True)
        try:
            fedctl = [FEDCTL, "--kubeconfig", str(running.kubeconfig)]
            for name in CLUSTERS:
                join = [
                    "cluster",
                    "join",
                    name,
                    "--cluster-kubeconfig",
                    str(kubeconfig),
                    "--cluster-context",
                    name,
                ]
                subprocess.run([*fedctl, *join], check=True, capture_output=True, timeout=60)
            with running.client(running.admin_token) as http:
                assert http.post("/api/v1/namespaces", json={"metadata": {"name": "shop"}}).status_code == 201
                made = http.post("/apis/apps/v1/namespaces/shop/replicasets", json=_web())
                assert made.status_code == 201, made.text

            command = " ".join([*fedctl, "spread", "-n", "shop", "--watch"])
            subprocess.run(
                [*tmux, "new-session", "-d", "-s", "spread", "-x", "160", "-y", "40", command], check=True
            )

            def screen() -> str:
                shown = subprocess.run(
                    [*tmux, "capture-pane", "-p", "-t", "spread"], capture_output=True, text=True, timeout=10
                )
                return "\n".join(line.rstrip() for line in shown.stdout.splitlines() if line.strip())

            def showing(pattern: str) -> str | None:
                text = screen()
                return text if re.search(pattern, text, re.M) else None

            before = wait_until(
                lambda: showing(r"^\s*shop/web\s+2/2\s+2/2\s+2/2\s+6/6$"),
                within=40,
                interval=0.5,
                what="2/2/2",
            )
            assert re.search(r"^\s*HEALTH\s+Ready\s+Ready\s+Ready$", before, re.M), before

            subprocess.run(
                [FEDCTL, "sim", "fail", "us-central1", "--mode", "down", "--kubeconfig", str(kubeconfig)],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
            # columns are sorted: asia-east1, europe-west1, us-central1
            after = wait_until(
                lambda: showing(r"^\s*shop/web\s+3/3\s+3/3\s+\?/0 Stale\s+6/6$"),
                within=40,
                interval=0.5,
                what="us-central1's replicas moved",
            )
            assert re.search(r"^\s*HEALTH\s+Ready\s+Ready\s+Offline$", after, re.M), after
            assert re.search(
                r"^\s*REPLICASET\s+asia-east1\s+europe-west1\s+us-central1\s+TOTAL$", after, re.M
            )
        finally:
            running.stop()
    capture = (
        "$ fedctl spread -n shop --watch          # all three regions up\n\n"
        f"{before}\n\n"
        "$ fedctl sim fail us-central1 --mode down   # in another terminal; moments later:\n\n"
        f"{after}\n"
    )
    (tmp_path / "spread-failover.txt").write_text(capture)
    wanted = os.environ.get("FEDERATION_SPREAD_CAPTURE")
    if wanted:
        Path(wanted).write_text(capture)
