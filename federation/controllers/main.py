"""``federation-controller``: the controllers alone, in a process of their own, for deployments.

Several may run: they elect a leader through a lease in Postgres
(:mod:`federation.controllers.leadership`), and only the leader runs the
:class:`~federation.controllers.manager.ControllerManager`, over the federation's Postgres
(``FEDERATION_DATABASE_URL``, required: a deployment names its database; only ``fedctl up`` starts an
embedded one) with the encryption key of the API servers (``FEDERATION_ENCRYPTION_KEY`` or
``FEDERATION_ENCRYPTION_KEY_FILE``), since cluster credentials are Secrets sealed at rest. Like
``federation-apiserver`` it refuses a database whose schema is not current: migrations are their own
step (``fedctl db upgrade``).

Beside the controllers it serves, on ``FEDERATION_CONTROLLER_METRICS_ADDRESS:_PORT`` (loopback, 8080 by
default; port 0 picks a free one, printed at start), ``/metrics`` (prometheus-client's default
registry), ``/healthz`` (the process runs) and ``/readyz`` (200 while the database answers; a standby is
ready too). SIGTERM or SIGINT stops it cleanly (member connections closed) with exit 0. Bad settings are
one line naming the variable (never its value) and exit 2."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from federation.apimachinery import ApiError, bind_tcp, paced_collector
from federation.controllers.leadership import Leadership
from federation.controllers.manager import ControllerManager
from federation.settings import (
    ControllerSettings,
    DatabaseSettings,
    SecuritySettings,
    TrafficSettings,
    describe_error,
)
from federation.store import LeaseStore, PostgresStorage, Sealer, SealingError, make_engine, migrate

log = logging.getLogger("federation.controller")

PROG = "federation-controller"
USAGE_ERROR = 2
RUN_ERROR = 1


@dataclass(frozen=True)
class Setup:
    """Everything read from the environment, checked before anything starts."""

    url: str
    sealer: Sealer
    controllers: ControllerSettings
    watch_window: int
    traffic: TrafficSettings


def _refuse(message: str, code: int = USAGE_ERROR) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def read_setup() -> Setup:
    """The settings, the database URL and the key; one line and exit 2 on anything wrong."""
    try:
        db = DatabaseSettings()
        security = SecuritySettings()
        controllers = ControllerSettings()
        traffic = TrafficSettings()
    except ValidationError as err:
        _refuse(describe_error(err))
    if db.database_url is None:
        _refuse("FEDERATION_DATABASE_URL is required (the federation's Postgres, as the API servers use)")
    try:
        material = security.key_material()
    except OSError as err:
        _refuse(f"FEDERATION_ENCRYPTION_KEY_FILE cannot be read: {err.strerror}")
    if material is None:
        _refuse(
            "no encryption key: set FEDERATION_ENCRYPTION_KEY or FEDERATION_ENCRYPTION_KEY_FILE "
            "(the API servers' key: cluster credentials are sealed with it)"
        )
    variable = "FEDERATION_ENCRYPTION_KEY" if security.encryption_key else "FEDERATION_ENCRYPTION_KEY_FILE"
    try:
        sealer = Sealer.from_key_material(material)
    except (SealingError, ValueError):
        _refuse(f"{variable}: not a valid key (one base64 key, or '<key id>:<base64 key>' lines)")
    return Setup(db.database_url.get_secret_value(), sealer, controllers, db.watch_window, traffic)


def check_schema(url: str) -> None:
    """Refuse a database that cannot be reached or whose schema is not at the newest revision."""
    try:
        current = migrate.current(url)
    except SQLAlchemyError as err:
        # The driver's message may quote the URL's password: name the kind of failure only.
        _refuse(f"cannot reach the database at FEDERATION_DATABASE_URL ({type(err).__name__})", RUN_ERROR)
    if current != migrate.head():
        _refuse("the database schema is not current; run `fedctl db upgrade` first", RUN_ERROR)


def probes_app(storage: PostgresStorage) -> Starlette:
    """/metrics, /healthz and /readyz of the controller process. Ready while the database answers:
    a standby is ready too (it takes over when the leader goes); ``federation_controller_leader``
    says which process leads."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        try:
            await asyncio.wait_for(storage.current_version(), 2.0)
        except (ApiError, TimeoutError):
            return PlainTextResponse("the database does not answer", status_code=503)
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/livez", healthz),
            Route("/readyz", readyz),
        ]
    )


class ProbeServer(uvicorn.Server):
    """uvicorn for the probes, leaving signals to :func:`run` (which stops everything in order)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run(setup: Setup, sock: socket.socket) -> None:
    """Run the controllers, and the probe server on ``sock``, until SIGTERM/SIGINT; then stop both."""
    settings = setup.controllers
    engine = make_engine(setup.url, pool_size=8)
    window = setup.watch_window
    storage = PostgresStorage(engine, setup.sealer, window=window, retention=max(100_000, window))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # The traffic provider's files (Caddy's configuration), private to this process.
    work_dir = tempfile.mkdtemp(prefix="federation-traffic-")
    try:
        await storage.start()
        leadership = Leadership(LeaseStore(engine), storage, duration=settings.lease_duration)

        async def lead(fenced: PostgresStorage, holds: Callable[[], bool]) -> None:
            manager = ControllerManager(
                fenced, settings=settings, traffic=setup.traffic, work_dir=Path(work_dir), may_write=holds
            )
            await manager.run()

        config = uvicorn.Config(probes_app(storage), log_level="warning", access_log=False, lifespan="off")
        probes = ProbeServer(config)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"{PROG}: metrics, healthz, readyz on http://{shown}:{port}", flush=True)
        serving = loop.create_task(probes.serve(sockets=[sock]), name="probe server")
        running = loop.create_task(leadership.run(lead), name="leader election and controllers")
        stop = loop.create_task(stopping.wait(), name="stop signal")
        async with paced_collector():  # the process is ours: see federation.apimachinery.collecting
            done, _ = await asyncio.wait({running, serving, stop}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping the controllers")
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        probes.should_exit = True
        await serving
        stop.cancel()
        for task in done - {stop}:
            task.result()  # a controller manager or probe server that ended on its own: its error
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await storage.close()
        await engine.dispose()
        shutil.rmtree(work_dir, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Run the federation's controllers (cluster health, placement, propagation, status) "
            "against the federation's Postgres, until SIGTERM or SIGINT. Configured by environment "
            "variables: FEDERATION_DATABASE_URL (required), FEDERATION_ENCRYPTION_KEY or "
            "FEDERATION_ENCRYPTION_KEY_FILE (required: the API servers' key), "
            "FEDERATION_CONTROLLER_METRICS_ADDRESS and _PORT (where /metrics, /healthz and /readyz "
            "are served; default 127.0.0.1:8080), and the controller settings of docs/federation.md."
        ),
        epilog="Example: FEDERATION_DATABASE_URL=postgresql://fed@db/fed "
        "FEDERATION_ENCRYPTION_KEY_FILE=/etc/federation/encryption.key federation-controller",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its "Context impl" lines say nothing here
    setup = read_setup()
    check_schema(setup.url)
    settings = setup.controllers
    try:
        sock = bind_tcp(settings.controller_metrics_address, settings.controller_metrics_port)
    except OSError as err:
        _refuse(f"cannot listen on FEDERATION_CONTROLLER_METRICS_ADDRESS/_PORT: {err.strerror}", RUN_ERROR)
    with sock:
        sock.listen(64)
        asyncio.run(run(setup, sock))
    log.info("controllers stopped")
