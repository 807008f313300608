"""Starting real servers for tests: ``fedctl up`` as a subprocess, as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

FEDCTL = str(Path(sys.executable).with_name("fedctl"))


@dataclass
class RunningFederation:
    process: subprocess.Popen[str]
    data_dir: Path
    url: str

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "federation.kubeconfig"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify = (
            ssl.create_default_context(cafile=str(self.ca_file)) if self.url.startswith("https") else True
        )
        return httpx.Client(base_url=self.url, verify=verify, headers=headers, timeout=10)

    def stop(self) -> str:
        """SIGTERM, wait, and return what it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        out = ""
        if self.process.stdout and not self.process.stdout.closed:
            out = self.process.stdout.read()
            self.process.stdout.close()
        return out


START_TIMEOUT = 180.0
"""How long ``fedctl up`` may take to serve /healthz. With no database URL it first initialises and
starts an embedded Postgres (initdb), migrates, makes certificates and starts its workers: 23 s
measured with ``--workers 2`` on two cores at a load average of 7, past the former 60 s when the
test processes had a lower share of the CPU than the rest. It only bounds a failure: a start that
works returns as soon as /healthz answers."""


def start_federation(
    data_dir: Path,
    *,
    database_url: str | None,
    extra_env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = START_TIMEOUT,
    controllers: bool = False,
) -> RunningFederation:
    """``fedctl up`` on ``data_dir``. ``controllers``: run the controllers beside the API (off by
    default: a test of the API's own semantics must not see the controllers' finalizers and status
    writes; a test of the whole system asks for them)."""
    env = dict(os.environ)
    env.pop("FEDERATION_DATABASE_URL", None)
    if database_url:
        env["FEDERATION_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [
            FEDCTL,
            "up",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            *([] if controllers or "--no-controllers" in extra_args else ["--no-controllers"]),
            *extra_args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        found = re.search(r"serving on (https?://\S+)", line)
        if found:
            running = RunningFederation(proc, data_dir, found.group(1))
            try:
                _wait_healthy(running, deadline)
            except BaseException:
                running.stop()
                raise
            return running
    proc.kill()
    proc.wait()
    proc.stdout.close()
    raise RuntimeError("fedctl up did not start:\n" + "".join(lines))


def _wait_healthy(running: RunningFederation, deadline: float) -> None:
    with running.client() as client:
        while time.monotonic() < deadline:
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError("federation API did not become healthy")
