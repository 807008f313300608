"""Running the federation API server: from settings to a listening HTTPS server, and back down.

``fedctl up`` (a laptop or a demo) and ``federation-apiserver`` (a deployment) share this. With no
database URL it starts the embedded Postgres in the data dir. On first run it creates, in the data
dir, the encryption key file (0600), a CA and serving certificate (``pki/``), an admin token
(``admin.token``, 0600) and ``federation.kubeconfig`` whose current context reaches the server with
that token; later runs reuse them. Everything started is stopped on SIGINT/SIGTERM.

The server is served by this process, or, with ``FEDERATION_WORKERS`` above 1, by that many worker
processes on the socket this one binds (:mod:`federation.api.workers`). Either way the steps that
must happen once (the database, migrations, files, binding, the "serving on" line) happen here
first; each serving process then makes its own engine, storage and app (:func:`serve`). Of the
workers, only the first resumes the namespace terminations a previous server left, so they run once
per server, not once per worker (:func:`worker_spec`).

A :class:`Companion` runs beside the server in the same event loop over the same storage: ``fedctl
up`` hands the controllers down this way (the CLI layer builds it: this package may not import
``federation.controllers``, a sibling). With several workers only the first runs it, as for the
terminations; its metrics reach every worker's ``/metrics`` through the multiprocess sums.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import uvicorn

from federation.api.app import create_app
from federation.api.workers import Supervisor
from federation.apimachinery import (
    IDLE_TIMEOUT,
    Kubeconfig,
    KubeContext,
    bind_tcp,
    ensure_ca_and_serving_cert,
    write_atomically,
    write_kubeconfig,
)
from federation.settings import DatabaseSettings, SecuritySettings, ServerSettings
from federation.store import (
    EmbeddedPostgres,
    PostgresStorage,
    Sealer,
    TokenStore,
    generate_key_file,
    make_engine,
    migrate,
)

log = logging.getLogger(__name__)

DATABASE_NAME = "federation"
CONTEXT_NAME = "federation"


@dataclass(frozen=True)
class Paths:
    data_dir: Path

    @property
    def postgres(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "encryption.key"

    @property
    def admin_token(self) -> Path:
        return self.data_dir / "admin.token"

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "federation.kubeconfig"


@contextlib.contextmanager
def database(db: DatabaseSettings, paths: Paths) -> Iterator[str]:
    """The database URL to use: the configured one, or the embedded server's (started here)."""
    if db.database_url is not None:
        yield db.database_url.get_secret_value()
        return
    paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    server = EmbeddedPostgres.start(paths.postgres)
    try:
        server.create_database(DATABASE_NAME)
        yield server.url(DATABASE_NAME)
    finally:
        server.stop()


def load_sealer(security: SecuritySettings, paths: Paths, *, create: bool) -> Sealer:
    material = security.key_material()
    if material is None:
        if not paths.key_file.exists():
            if not create:
                raise SystemExit(
                    "no encryption key: set FEDERATION_ENCRYPTION_KEY or FEDERATION_ENCRYPTION_KEY_FILE"
                )
            generate_key_file(paths.key_file)
        material = paths.key_file.read_text()
    return Sealer.from_key_material(material)


async def ensure_admin_token(tokens: TokenStore, paths: Paths) -> str:
    """The admin token of ``fedctl up``: reused from ``admin.token`` while the database knows it."""
    if paths.admin_token.exists():
        token = paths.admin_token.read_text().strip()
        if await tokens.authenticate(token) is not None:
            return token
    token = await tokens.create(f"admin-{os.urandom(3).hex()}", "admin")
    write_atomically(paths.admin_token, token + "\n", mode=0o600)
    return token


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
WORKER_STOP_SIGNALS = (signal.SIGTERM,)
"""A supervised worker stops on SIGTERM only (see :mod:`federation.api.workers`): Ctrl-C reaches
the whole process group, and a worker that got SIGINT besides its supervisor's SIGTERM would take
the second signal as uvicorn's "force exit" and skip its graceful shutdown."""


class GracefulServer(uvicorn.Server):
    """uvicorn, except that the stop signals only ask it to stop: uvicorn's own handling re-raises
    the signal afterwards, which would kill the process before it stops what it started."""

    def __init__(self, config: uvicorn.Config, *, stop_signals: tuple[signal.Signals, ...]) -> None:
        super().__init__(config)
        self.stop_signals = stop_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in self.stop_signals:
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in self.stop_signals:
                loop.remove_signal_handler(sig)


def bind(address: str, port: int) -> socket.socket:
    sock = bind_tcp(address, port)
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class Listener:
    """The listening socket, bound once by the process that starts the server, and how clients
    reach it. Every serving process (one, or each worker) serves this same socket."""

    sock: socket.socket
    scheme: str
    host: str
    port: int
    tls_files: tuple[str, str] | None
    """The serving certificate and key files; None for plain HTTP."""
    ca_pem: bytes | None
    """The CA of a certificate made here, for the kubeconfig; None for the operator's own."""

    @property
    def shown_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.shown_host}:{self.port}"

    @property
    def client_url(self) -> str:
        """Where a client on this machine connects (a wildcard address is not one)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.shown_host
        return f"{self.scheme}://{host}:{self.port}"


def listen(server_settings: ServerSettings, paths: Paths) -> Listener:
    """The serving certificate (made in ``pki/`` unless the operator gave one) and the bound socket."""
    host = server_settings.listen_address
    tls_files: tuple[str, str] | None = None
    ca_pem: bytes | None = None
    if not server_settings.insecure_http:
        if server_settings.tls_cert_file is not None and server_settings.tls_key_file is not None:
            tls_files = (str(server_settings.tls_cert_file), str(server_settings.tls_key_file))
        else:
            cert = ensure_ca_and_serving_cert(paths.pki, hosts=sorted({"127.0.0.1", "localhost", host}))
            tls_files, ca_pem = (str(cert.cert), str(cert.key)), cert.ca_pem
    sock = bind(host, server_settings.port)
    return Listener(
        sock,
        scheme="http" if server_settings.insecure_http else "https",
        host=host,
        port=sock.getsockname()[1],
        tls_files=tls_files,
        ca_pem=ca_pem,
    )


async def write_client_files(url: str, listener: Listener, paths: Paths) -> None:
    """``fedctl up``: the admin token (made or reused) and the kubeconfig that reaches the server."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        token = await ensure_admin_token(TokenStore(engine), paths)
    finally:
        await engine.dispose()
    context = KubeContext(CONTEXT_NAME, listener.client_url, ca_pem=listener.ca_pem, token=token)
    write_kubeconfig(paths.kubeconfig, Kubeconfig(contexts=(context,), current_context=CONTEXT_NAME))


class Companion(Protocol):
    """Something to run beside the API server over its storage, until cancelled. Picklable (it
    travels to a worker process); ``description`` is the line ``fedctl up`` prints about it."""

    @property
    def description(self) -> str: ...

    async def __call__(self, storage: PostgresStorage, /) -> None: ...


@dataclass(frozen=True)
class Worker:
    """What one serving process needs. Picklable: with several workers, each is started with it."""

    url: str
    paths: Paths
    server_settings: ServerSettings
    security: SecuritySettings
    listener: Listener
    watch_window: int = 10_000
    stop_signals: tuple[signal.Signals, ...] = STOP_SIGNALS
    resumes_terminations: bool = True
    """Whether this process finishes the namespace terminations a previous server left (one
    process of a server does; see :func:`worker_spec`)."""
    companion: Companion | None = None
    """Run beside the server in this process (the first worker only; see :func:`worker_spec`)."""


def worker_spec(worker: Worker, slot: int, *, restarted: bool) -> Worker:
    """What the worker in ``slot`` (1..N) of a supervised server gets: the first one resumes the
    namespace terminations a previous server left, the others do not, so that each runs once per
    server. A worker started again after an exit resumes them too, whatever its slot: the one before
    it may have ended in the middle of a termination it had begun (for a delete it served).
    Terminations tolerate a second runner (each pass checks the namespace's uid and deletes
    conditionally), so the rare overlap this allows costs work, never correctness.

    The companion (``fedctl up``'s controllers) runs in slot 1 only, restarted or not: two running
    at once would both act on the members."""
    return dataclasses.replace(
        worker,
        resumes_terminations=slot == 1 or restarted,
        companion=worker.companion if slot == 1 else None,
    )


async def serve(worker: Worker) -> None:
    """Serve the API on the listener until a stop signal, with this process's own engine,
    storage (connection pool, watch feed) and app. The socket stays open: its owner closes it."""
    sealer = load_sealer(worker.security, worker.paths, create=False)
    engine = make_engine(worker.url)
    tokens = TokenStore(engine)
    window = worker.watch_window
    storage = PostgresStorage(engine, sealer, window=window, retention=max(100_000, window))
    security, server_settings = worker.security, worker.server_settings
    bootstrap = security.bootstrap_token.get_secret_value() if security.bootstrap_token else None
    config = uvicorn.Config(
        create_app(
            storage=storage,
            tokens=tokens,
            bootstrap_token=bootstrap,
            metrics_open=server_settings.metrics_open,
            resume_terminations=worker.resumes_terminations,
            companion=worker.companion,
        ),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=IDLE_TIMEOUT,
    )
    if worker.listener.tls_files is not None:
        config.ssl_certfile, config.ssl_keyfile = worker.listener.tls_files
    try:
        await GracefulServer(config, stop_signals=worker.stop_signals).serve(sockets=[worker.listener.sock])
    finally:
        await engine.dispose()


def serve_forever(worker: Worker) -> None:
    """The body of a serving process: :func:`serve` on the event loop of :func:`run_forever`."""
    run_forever(serve(worker))


def run_forever(main: Coroutine[Any, Any, None]) -> None:
    """Run the server's event loop: uvloop where it is installed (about a third more requests per
    core than the default loop), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def run(
    db: DatabaseSettings,
    server_settings: ServerSettings,
    security: SecuritySettings,
    *,
    paths: Paths,
    upgrade: bool,
    create_files: bool,
    companion: Companion | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. ``upgrade``: apply the migrations first (``fedctl up``); else
    refuse a database whose schema is not current (a deployment migrates as its own step).
    ``create_files``: make the key, token and kubeconfig. ``companion``: run beside the server.

    Everything that must happen once happens here, in this process; then this process serves
    (one worker) or supervises ``server_settings.workers`` processes that serve the same socket."""
    with database(db, paths) as url:
        if upgrade:
            migrate.upgrade(url)
        elif migrate.current(url) != migrate.head():
            raise SystemExit("error: the database schema is not current; run `fedctl db upgrade` first")
        if create_files:
            paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        load_sealer(security, paths, create=create_files)  # makes the key file; none at all: refuse
        listener = listen(server_settings, paths)
        with contextlib.closing(listener.sock):
            if create_files:
                asyncio.run(write_client_files(url, listener, paths))
            print(f"federation API serving on {listener.url}", flush=True)
            if create_files:
                print(
                    f"kubeconfig: {paths.kubeconfig}\n  export KUBECONFIG={paths.kubeconfig}\n"
                    "  kubectl get namespaces",
                    flush=True,
                )
            if companion is not None:
                print(companion.description, flush=True)
            worker = Worker(
                url,
                paths,
                server_settings,
                security,
                listener,
                watch_window=db.watch_window,
                companion=companion,
            )
            if server_settings.workers == 1:
                serve_forever(worker)
            else:
                supervised = dataclasses.replace(worker, stop_signals=WORKER_STOP_SIGNALS)
                Supervisor(
                    serve_forever, supervised, count=server_settings.workers, per_worker=worker_spec
                ).run()


def run_up(
    *,
    data_dir: Path | None,
    port: int | None,
    workers: int | None = None,
    companion: Companion | None = None,
) -> None:
    """``fedctl up``: everything on one machine, in the foreground. ``port``, ``workers``: override
    the settings (validated as they are). ``companion``: run beside the server (the controllers)."""
    db = DatabaseSettings()
    overrides: dict[str, Any] = {
        name: value for name, value in (("port", port), ("workers", workers)) if value is not None
    }
    server_settings = ServerSettings(**overrides)
    paths = Paths((data_dir or db.data_dir).resolve())
    run(
        db,
        server_settings,
        SecuritySettings(),
        paths=paths,
        upgrade=True,
        create_files=True,
        companion=companion,
    )
