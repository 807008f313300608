"""The federation API while its Postgres is down: clear 503s, not ready, and recovery without a restart."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from federation.store import EmbeddedPostgres, migrate
from tests.servers import start_federation


def _eventually(check: Callable[[], bool], *, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_database_outage_gives_503_and_recovers(tmp_path: Path) -> None:
    # Not under tmp_path: the server runs as another OS user and needs to traverse the parents of
    # its data dir, and every pytest session that starts (another one on the machine) takes those
    # permissions off /tmp/pytest-of-<user>; the stop then fails and the restart finds a killed
    # server (conftest's postgres_server does the same for this reason).
    with tempfile.TemporaryDirectory(prefix="federation-outage-pg-") as pg_dir:
        _outage(tmp_path, Path(pg_dir) / "pg")


def _outage(tmp_path: Path, pg_dir: Path) -> None:
    postgres = EmbeddedPostgres.start(pg_dir)
    postgres.create_database("federation")
    url = postgres.url("federation")
    migrate.upgrade(url)
    running = start_federation(tmp_path / "data", database_url=url)
    try:
        with running.client(running.admin_token) as http:
            assert http.get("/readyz").status_code == 200
            made = http.post("/api/v1/namespaces/default/secrets", json={"metadata": {"name": "before"}})
            assert made.status_code == 201

            postgres.stop()

            def unavailable() -> bool:
                try:
                    answer = http.get("/api/v1/namespaces/default/secrets/before")
                except httpx.TransportError:
                    return False
                return answer.status_code == 503

            assert _eventually(unavailable), "requests should get 503 while the database is down"
            answer = http.get("/api/v1/namespaces/default/secrets/before")
            assert answer.json()["reason"] == "ServiceUnavailable"
            assert answer.headers["retry-after"] == "1"
            assert str(tmp_path) not in answer.text, "the database's location stays out of the answer"
            assert str(pg_dir) not in answer.text, "the database's location stays out of the answer"
            assert http.get("/readyz").status_code == 503
            assert http.get("/healthz").status_code == 200, "the process itself is alive"

            postgres = EmbeddedPostgres.start(pg_dir)
            assert _eventually(lambda: http.get("/readyz").status_code == 200)
            assert http.get("/api/v1/namespaces/default/secrets/before").status_code == 200
            after = http.post("/api/v1/namespaces/default/secrets", json={"metadata": {"name": "after"}})
            assert after.status_code == 201
    finally:
        running.stop()
        postgres.stop()
