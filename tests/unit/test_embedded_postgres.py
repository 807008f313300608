"""How ``EmbeddedPostgres.start`` reads a data dir's ``postmaster.pid`` before it starts or adopts a server.

The package fails on a server it finds alive but not ready (still starting, or still shutting down
after another holder's stop); ``start`` waits for such a server to settle, and no longer than asked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from federation.store.embedded import _live_server_status, _wait_until_settled


def pid_file(data_dir: Path, pid: int, status: str | None) -> None:
    lines = [str(pid), str(data_dir), "1700000000", "5432", str(data_dir), "", "  0  0"]
    if status is not None:
        lines.append(status)
    (data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")


@pytest.fixture
def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_no_file_or_a_dead_server_is_no_server(tmp_path: Path, dead_pid: int) -> None:
    assert _live_server_status(tmp_path) is None
    pid_file(tmp_path, dead_pid, "stopping")
    assert _live_server_status(tmp_path) is None


@pytest.mark.parametrize("status", ["ready", "stopping", "starting"])
def test_a_live_server_shows_its_status(tmp_path: Path, status: str) -> None:
    pid_file(tmp_path, os.getpid(), status)
    assert _live_server_status(tmp_path) == status


def test_a_file_being_written_is_a_server_starting(tmp_path: Path) -> None:
    (tmp_path / "postmaster.pid").write_text("")
    assert _live_server_status(tmp_path) == "starting"
    pid_file(tmp_path, os.getpid(), None)
    assert _live_server_status(tmp_path) == "starting"


def test_waits_for_a_stopping_server_to_be_gone(tmp_path: Path) -> None:
    pid_file(tmp_path, os.getpid(), "stopping")
    gone = threading.Timer(0.3, lambda: (tmp_path / "postmaster.pid").unlink())
    gone.start()
    started = time.monotonic()
    _wait_until_settled(tmp_path, time.monotonic() + 30)
    assert time.monotonic() - started >= 0.25
    gone.join()


def test_a_server_that_never_settles_is_named_at_the_deadline(tmp_path: Path) -> None:
    pid_file(tmp_path, os.getpid(), "stopping")
    with pytest.raises(TimeoutError, match="is still 'stopping'"):
        _wait_until_settled(tmp_path, time.monotonic() + 0.2)
