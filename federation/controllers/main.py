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
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from pydantic import ValidationError

from federation.apimachinery import bind_tcp
from federation.settings import (
    ControllerSettings,
    DatabaseSettings,
    SecuritySettings,
    TrafficSettings,
    describe_error,
)

if TYPE_CHECKING:
    from federation.store import Sealer

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
    from federation.store import Sealer, SealingError  # after the cheap checks: it imports the store

    try:
        sealer = Sealer.from_key_material(material)
    except (SealingError, ValueError):
        _refuse(f"{variable}: not a valid key (one base64 key, or '<key id>:<base64 key>' lines)")
    return Setup(db.database_url.get_secret_value(), sealer, controllers, db.watch_window, traffic)


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
    # Imported only now: the controllers, the store and the servers take seconds to import, and
    # --help and a refused setting need none of them.
    from federation.controllers.serving import run, schema_problem

    problem = schema_problem(setup.url)
    if problem is not None:
        _refuse(problem, RUN_ERROR)
    settings = setup.controllers
    try:
        sock = bind_tcp(settings.controller_metrics_address, settings.controller_metrics_port)
    except OSError as err:
        _refuse(f"cannot listen on FEDERATION_CONTROLLER_METRICS_ADDRESS/_PORT: {err.strerror}", RUN_ERROR)
    with sock:
        sock.listen(64)
        asyncio.run(run(setup, sock))
    log.info("controllers stopped")
