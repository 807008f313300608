"""Running the federation API server: from settings to a listening HTTPS server, and back down.

``fedctl up`` (a laptop or a demo) and ``federation-apiserver`` (a deployment) share this. With no
database URL it starts the embedded Postgres in the data dir. On first run it creates, in the data
dir, the encryption key file (0600), a CA and serving certificate (``pki/``), an admin token
(``admin.token``, 0600) and ``federation.kubeconfig`` whose current context reaches the server with
that token; later runs reuse them. Everything started is stopped on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from federation.api.app import create_app
from federation.apimachinery.certificates import ensure_ca_and_serving_cert
from federation.apimachinery.kubeconfig import Kubeconfig, KubeContext, write_kubeconfig
from federation.settings import DatabaseSettings, SecuritySettings, ServerSettings
from federation.store import EmbeddedPostgres, PostgresStorage, Sealer, TokenStore, make_engine, migrate
from federation.store.sealing import generate_key_file

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
    fd = os.open(paths.admin_token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


class GracefulServer(uvicorn.Server):
    """uvicorn, except that SIGINT/SIGTERM only ask it to stop: uvicorn's own handling re-raises
    the signal afterwards, which would kill the process before it stops what it started."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that name it, and without
    # it Nagle holds the second write of each response until the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def serve(
    *,
    url: str,
    paths: Paths,
    server_settings: ServerSettings,
    security: SecuritySettings,
    create_files: bool,
    watch_window: int = 10_000,
    announce: bool = True,
) -> None:
    """Serve the API until SIGINT/SIGTERM. ``create_files``: make the key, token and kubeconfig."""
    if create_files:
        paths.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sealer = load_sealer(security, paths, create=create_files)
    engine = make_engine(url)
    tokens = TokenStore(engine)
    storage = PostgresStorage(engine, sealer, window=watch_window, retention=max(100_000, watch_window))
    bootstrap = security.bootstrap_token.get_secret_value() if security.bootstrap_token else None
    sock = bind(server_settings.listen_address, server_settings.port)
    port = sock.getsockname()[1]
    host = server_settings.listen_address
    shown_host = f"[{host}]" if ":" in host else host
    scheme = "http" if server_settings.insecure_http else "https"
    config = uvicorn.Config(
        create_app(
            storage=storage,
            tokens=tokens,
            bootstrap_token=bootstrap,
            metrics_open=server_settings.metrics_open,
        ),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    ca_pem: bytes | None = None
    if not server_settings.insecure_http:
        if server_settings.tls_cert_file is not None and server_settings.tls_key_file is not None:
            config.ssl_certfile, config.ssl_keyfile = (
                str(server_settings.tls_cert_file),
                str(server_settings.tls_key_file),
            )
        else:
            hosts = sorted({"127.0.0.1", "localhost", host})
            cert = ensure_ca_and_serving_cert(paths.pki, hosts=hosts)
            config.ssl_certfile, config.ssl_keyfile = str(cert.cert), str(cert.key)
            ca_pem = cert.ca_pem
    try:
        if create_files:
            token = await ensure_admin_token(tokens, paths)
            server_host = "127.0.0.1" if host in ("0.0.0.0", "::") else shown_host
            write_kubeconfig(
                paths.kubeconfig,
                Kubeconfig(
                    contexts=(
                        KubeContext(
                            CONTEXT_NAME, f"{scheme}://{server_host}:{port}", ca_pem=ca_pem, token=token
                        ),
                    ),
                    current_context=CONTEXT_NAME,
                ),
            )
        if announce:
            print(f"federation API serving on {scheme}://{shown_host}:{port}", flush=True)
            if create_files:
                print(
                    f"kubeconfig: {paths.kubeconfig}\n  export KUBECONFIG={paths.kubeconfig}\n"
                    "  kubectl get namespaces",
                    flush=True,
                )
        server = GracefulServer(config)
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        await engine.dispose()


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
) -> None:
    """Serve until SIGINT/SIGTERM. ``upgrade``: apply the migrations first (``fedctl up``); else
    refuse a database whose schema is not current (a deployment migrates as its own step)."""
    with database(db, paths) as url:
        if upgrade:
            migrate.upgrade(url)
        elif migrate.current(url) != migrate.head():
            raise SystemExit("error: the database schema is not current; run `fedctl db upgrade` first")
        run_forever(
            serve(
                url=url,
                paths=paths,
                server_settings=server_settings,
                security=security,
                create_files=create_files,
                watch_window=db.watch_window,
            )
        )


def run_up(*, data_dir: Path | None, port: int | None) -> None:
    """``fedctl up``: everything on one machine, in the foreground."""
    db = DatabaseSettings()
    server_settings = ServerSettings()
    if port is not None:
        server_settings = server_settings.model_copy(update={"port": port})
    paths = Paths((data_dir or db.data_dir).resolve())
    run(db, server_settings, SecuritySettings(), paths=paths, upgrade=True, create_files=True)
