"""``federation-apiserver``, the deployment entry point: it checks its inputs before it serves."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from federation.store import generate_key_material

APISERVER = str(Path(sys.executable).with_name("federation-apiserver"))
TOKEN = "deployment-bootstrap-token-0123"


def _env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDERATION_")}
    env.update(FEDERATION_DATABASE_URL=url, FEDERATION_DATA_DIR=str(tmp_path / "data"), FEDERATION_PORT="0")
    env.update(extra)
    return env


def test_refuses_a_database_without_the_current_schema(tmp_path: Path, make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database(migrated=False)
    done = subprocess.run([APISERVER], env=_env(tmp_path, url), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "run `fedctl db upgrade` first" in done.stderr


def test_refuses_to_start_without_an_encryption_key(tmp_path: Path, database_url: str) -> None:
    done = subprocess.run(
        [APISERVER], env=_env(tmp_path, database_url), capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "FEDERATION_ENCRYPTION_KEY" in done.stderr


def test_refuses_plain_http_on_every_address_with_one_line(tmp_path: Path, database_url: str) -> None:
    env = _env(
        tmp_path,
        database_url,
        FEDERATION_ENCRYPTION_KEY=generate_key_material(),
        FEDERATION_INSECURE_HTTP="true",
        FEDERATION_LISTEN_ADDRESS="0.0.0.0",
    )
    done = subprocess.run([APISERVER], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: FEDERATION_INSECURE_HTTP is refused on a non-loopback")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists(), "nothing is started or written before the refusal"


def test_serves_with_key_and_bootstrap_token(tmp_path: Path, database_url: str) -> None:
    env = _env(
        tmp_path,
        database_url,
        FEDERATION_ENCRYPTION_KEY=generate_key_material(),
        FEDERATION_BOOTSTRAP_TOKEN=TOKEN,
        FEDERATION_INSECURE_HTTP="true",
    )
    proc = subprocess.Popen([APISERVER], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"serving on (http://\S+)", line)
        assert found, line
        with httpx.Client(base_url=found.group(1), headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            assert http.get("/api/v1/namespaces/federation-system").status_code == 200
        assert not (tmp_path / "data" / "federation.kubeconfig").exists(), "deployments write no kubeconfig"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == 0
