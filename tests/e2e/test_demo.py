"""``fedctl demo`` (what ``make demo`` runs) to the end, off a terminal: the story is told, the traffic
through the global address loses (almost) nothing, and nothing is left running afterwards."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

FEDCTL = str(Path(sys.executable).with_name("fedctl"))
FAILED_BOUND_PERCENT = 1.0
"""The traffic issue's bound (tests/integration/test_traffic_failover.py): at most 1 % of the
requests sent may fail over a region's outage."""


def test_the_demo_runs_to_the_end_and_leaves_nothing_behind(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    started = time.monotonic()
    done = subprocess.run(
        [FEDCTL, "demo", "--data-dir", str(home)], capture_output=True, text=True, timeout=240, check=False
    )
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for expected in (
        "$ fedctl cluster join us-central1",
        "$ fedctl apply -f docs/examples/ --wait",
        "$ fedctl sim fail us-central1 --mode down",
        "is Offline; its replicas run in the other regions",
        "$ fedctl sim heal us-central1",
        "nothing left running",
    ):
        assert expected in output, f"{expected!r} missing from:\n{output[-4000:]}"
    assert "\x1b[" not in done.stdout, "colour codes off a terminal"
    summary = re.search(r"sent (\d+), failed (\d+) \(([\d.]+) %\)", output)
    assert summary, output[-2000:]
    sent, failed, percent = int(summary.group(1)), int(summary.group(2)), float(summary.group(3))
    print(f"demo: {took:.0f} s, {failed} of {sent} requests failed ({percent} %)")
    assert sent > 300
    assert percent <= FAILED_BOUND_PERCENT
    address = re.search(r"global address http://127\.0\.0\.1:(\d+)/", output)
    assert address, output[-2000:]
    left = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if any(str(home) in part for part in p.info["cmdline"] or [])
    ]
    assert not left, f"processes left running: {left}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", int(address.group(1))))  # the global address's port is free again
