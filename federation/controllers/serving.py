"""The ``federation-controller`` process once its settings are read (:mod:`federation.controllers.main`):
the schema check, the probe server (``/metrics``, ``/healthz``, ``/readyz``) and the controllers under
leader election, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from federation.apimachinery import ApiError, paced_collector
from federation.controllers.leadership import Leadership
from federation.controllers.main import PROG
from federation.controllers.manager import ControllerManager
from federation.store import LeaseStore, PostgresStorage, make_engine, migrate

if TYPE_CHECKING:
    from federation.controllers.main import Setup

log = logging.getLogger("federation.controller")


def schema_problem(url: str) -> str | None:
    """Why the controllers cannot run on this database (it cannot be reached, or its schema is not
    at the newest revision), or None."""
    try:
        current = migrate.current(url)
    except SQLAlchemyError as err:
        # The driver's message may quote the URL's password: name the kind of failure only.
        return f"cannot reach the database at FEDERATION_DATABASE_URL ({type(err).__name__})"
    if current != migrate.head():
        return "the database schema is not current; run `fedctl db upgrade` first"
    return None


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
