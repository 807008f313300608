"""``fedctl up`` as a user runs it: embedded Postgres, first-run files, reuse, clean shutdown."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import yaml

from tests.servers import FEDCTL, start_federation
from tests.tools import missing


def _postgres_running(data_dir: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and any(str(data_dir) in part for part in cmdline):
            found.append(proc.pid)
    return found


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_creates_private_files_and_next_run_reuses_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_federation(data, database_url=None, controllers=True)
    try:
        for name in ("encryption.key", "admin.token", "federation.kubeconfig", "pki/ca.key", "pki/tls.key"):
            assert _mode(data / name) == 0o600, name
        kubeconfig = yaml.safe_load((data / "federation.kubeconfig").read_text())
        assert kubeconfig["current-context"] == "federation"
        assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
        token = kubeconfig["users"][0]["user"]["token"]
        assert token == first.admin_token
        assert _postgres_running(data / "postgres"), "the embedded Postgres should run in the data dir"
        with first.client(token) as http:
            created = http.post(
                "/api/v1/namespaces/default/secrets",
                json={"metadata": {"name": "keep"}, "stringData": {"k": "survives"}},
            )
            assert created.status_code == 201
            assert http.get("/metrics").status_code == 200
        with first.client() as anonymous:
            assert anonymous.get("/metrics").status_code == 401
        key_before = (data / "encryption.key").read_text()
        ca_before = (data / "pki" / "ca.crt").read_bytes()
    finally:
        output = first.stop()
    assert first.process.returncode == 0, output
    deadline = time.monotonic() + 15
    while _postgres_running(data / "postgres") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _postgres_running(data / "postgres"), "fedctl up left its Postgres running"

    second = start_federation(data, database_url=None)
    try:
        assert second.admin_token == token
        assert (data / "encryption.key").read_text() == key_before
        assert (data / "pki" / "ca.crt").read_bytes() == ca_before
        with second.client(token) as http:
            secret = http.get("/api/v1/namespaces/default/secrets/keep").json()
            assert base64.b64decode(secret["data"]["k"]) == b"survives"
    finally:
        second.stop()


BOOTSTRAP = "bootstrap-token-0123456789"


def test_plain_http_only_when_asked_and_bootstrap_token(tmp_path: Path, database_url: str) -> None:
    running = start_federation(
        tmp_path / "data",
        database_url=database_url,
        extra_env={"FEDERATION_INSECURE_HTTP": "true", "FEDERATION_BOOTSTRAP_TOKEN": BOOTSTRAP},
    )
    try:
        assert running.url.startswith("http://")
        with httpx.Client(base_url=running.url) as http:
            assert http.get("/healthz").status_code == 200
            for token in (running.admin_token, BOOTSTRAP):
                answer = http.get("/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 200
            editor = subprocess.run(
                [FEDCTL, "token", "create", "--role", "editor", "--data-dir", str(running.data_dir)],
                env={**os.environ, "FEDERATION_DATABASE_URL": database_url},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            as_editor = {"Authorization": f"Bearer {editor}"}
            made = http.post(
                "/api/v1/namespaces/default/secrets", json={"metadata": {"name": "e"}}, headers=as_editor
            )
            assert made.status_code == 201
            creds = http.get("/api/v1/namespaces/federation-system/secrets", headers=as_editor)
            assert (creds.status_code, creds.json()["reason"]) == (403, "Forbidden")
    finally:
        running.stop()


def test_weak_bootstrap_token_is_refused_with_one_line(tmp_path: Path, database_url: str) -> None:
    env = {**os.environ, "FEDERATION_DATABASE_URL": database_url, "FEDERATION_BOOTSTRAP_TOKEN": "short"}
    done = subprocess.run(
        [FEDCTL, "up", "--data-dir", str(tmp_path / "data"), "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "FEDERATION_BOOTSTRAP_TOKEN must be at least 16 characters" in done.stderr
    assert "Traceback" not in done.stderr
    assert "short" not in done.stderr, "the rejected value must not be echoed"
    assert len(done.stderr.strip().splitlines()) == 1


def test_migrations_ship_in_the_wheel(tmp_path: Path) -> None:
    """`fedctl db upgrade` must work from an installed package, not only from the source tree."""
    import zipfile

    root = Path(__file__).resolve().parents[2]
    uv = Path(os.environ.get("VIRTUAL_ENV", root / ".venv")) / "bin" / "uv"
    if not uv.exists():
        missing(f"uv is not in the virtualenv ({uv}): it builds the wheel")
    subprocess.run(
        [str(uv), "build", "--wheel", "--out-dir", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("federation-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "federation/migrations/env.py" in names
    assert "federation/migrations/script.py.mako" in names
    assert any(n.startswith("federation/migrations/versions/0001") for n in names)


def test_db_upgrade_and_downgrade_commands(database_url: str) -> None:
    env = {**os.environ, "FEDERATION_DATABASE_URL": database_url}
    down = subprocess.run(
        [FEDCTL, "db", "downgrade", "base"], env=env, capture_output=True, text=True, timeout=60
    )
    assert down.returncode == 0, down.stderr
    assert "base" in down.stdout
    up = subprocess.run([FEDCTL, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    current = subprocess.run([FEDCTL, "db", "current"], env=env, capture_output=True, text=True, timeout=60)
    assert current.stdout.strip() == up.stdout.split()[-1]
