"""``fedctl up --workers 2`` as a user runs it: two processes serve one port, as one server.

Most tests share one server (embedded Postgres, fresh data dir, so both workers create the initial
namespaces at once), which ``test_sigterm_stops_every_process`` stops. Most requests go on new
connections: the kernel gives each new connection to one worker or the other, so a request and the
next one may meet different workers, which is exactly what must not be noticeable.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_fedctl_up import _postgres_running
from tests.servers import FEDCTL, RunningFederation, start_federation
from tests.tools import kubectl_binary

WORKERS = 2


@dataclass
class Served:
    """The running ``fedctl up --workers 2`` and what it has printed so far (read as it comes)."""

    running: RunningFederation
    printed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.running.process.stdout is not None
        for line in self.running.process.stdout:
            self.printed.append(line)

    def wait_printed(self, text: str, *, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not any(text in line for line in self.printed):
            assert time.monotonic() < deadline, f"{text!r} not printed; saw:\n{''.join(self.printed)}"
            time.sleep(0.1)

    def stop(self) -> str:
        """SIGTERM, wait for the exit, and return everything printed after the start."""
        process = self.running.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._reader.join(timeout=10)
        self.running.stop()  # closes the pipe
        return "".join(self.printed)

    def workers(self) -> list[psutil.Process]:
        found = []
        for child in psutil.Process(self.running.process.pid).children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue  # it just ended
        return found

    def client(self) -> httpx.Client:
        return self.running.client(self.running.admin_token)

    def fresh_connections(self) -> httpx.Client:
        """A client that opens a new connection for every request."""
        return httpx.Client(
            base_url=self.running.url,
            verify=ssl.create_default_context(cafile=str(self.running.ca_file)),
            headers={"Authorization": f"Bearer {self.running.admin_token}"},
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=10,
        )

    @property
    def port(self) -> int:
        return int(self.running.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    running = start_federation(
        tmp_path_factory.mktemp("workers") / "data", database_url=None, extra_args=["--workers", str(WORKERS)]
    )
    served = Served(running)
    yield served
    served.stop()


def _namespace(http: httpx.Client, stem: str) -> str:
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


def test_both_workers_accept_connections(served: Served) -> None:
    """Each worker is a child of ``fedctl up``, and each holds some of many open connections."""
    deadline = time.monotonic() + 30
    while True:
        workers = served.workers()
        assert len(workers) == WORKERS
        clients = [served.client() for _ in range(16)]
        try:
            for client in clients:
                assert client.get("/readyz").status_code == 200
            held = {
                w.pid: sum(
                    1
                    for c in w.net_connections("tcp")
                    if c.laddr and c.laddr.port == served.port and c.status == psutil.CONN_ESTABLISHED
                )
                for w in workers
            }
        finally:
            for client in clients:
                client.close()
        assert sum(held.values()) == len(clients), held
        if all(held.values()):
            return
        # A worker still starting accepts nothing yet: its share goes to the other.
        assert time.monotonic() < deadline, f"one worker never accepted a connection: {held}"
        time.sleep(0.2)


def test_a_create_is_seen_at_once_on_any_connection(served: Served) -> None:
    with served.client() as writer, served.fresh_connections() as reader:
        ns = _namespace(writer, "read-your-writes")
        for i in range(50):
            made = writer.post(f"/api/v1/namespaces/{ns}/secrets", json={"metadata": {"name": f"s{i}"}})
            assert made.status_code == 201, made.text
            got = reader.get(f"/api/v1/namespaces/{ns}/secrets/s{i}")
            assert got.status_code == 200, got.text
            assert got.json()["metadata"]["resourceVersion"] == made.json()["metadata"]["resourceVersion"]


def test_a_watch_sees_creates_made_on_other_connections(served: Served) -> None:
    with served.client() as watcher, served.fresh_connections() as writer:
        ns = _namespace(writer, "watch")
        version = watcher.get(f"/api/v1/namespaces/{ns}/secrets").json()["metadata"]["resourceVersion"]
        params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "20"}
        names = {f"s{i}" for i in range(20)}
        seen: set[str] = set()
        with watcher.stream("GET", f"/api/v1/namespaces/{ns}/secrets", params=params) as events:
            assert events.status_code == 200
            for name in sorted(names):
                made = writer.post(f"/api/v1/namespaces/{ns}/secrets", json={"metadata": {"name": name}})
                assert made.status_code == 201
            for line in events.iter_lines():
                event = json.loads(line)
                if event["type"] == "ADDED":
                    seen.add(event["object"]["metadata"]["name"])
                if seen == names:
                    break
        assert seen == names


def test_kubectl_gets_namespaces(served: Served) -> None:
    env = {**os.environ, "KUBECONFIG": str(served.running.kubeconfig)}
    for _ in range(3):  # each run makes new connections, to either worker
        done = subprocess.run(
            [str(kubectl_binary("machine")), "get", "ns", "-o", "name"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert {"namespace/default", "namespace/federation-system"} <= set(done.stdout.split())


def _served_gets(http: httpx.Client) -> tuple[float, float]:
    """Namespace gets served so far, by the request counter and by the duration histogram."""
    counted = timed = 0.0
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("verb") != "get" or labels.get("resource") != "namespaces":
                continue
            if sample.name == "federation_api_requests_total" and labels.get("code") == "200":
                counted += sample.value
            if sample.name == "federation_api_request_duration_seconds_count":
                timed += sample.value
    return counted, timed


def test_metrics_count_the_requests_of_every_worker(served: Served) -> None:
    with served.fresh_connections() as http:
        before = _served_gets(http)
        for _ in range(40):
            assert http.get("/api/v1/namespaces/default").status_code == 200
        # Whichever worker answers a scrape, it reports the whole server.
        for _ in range(6):
            assert _served_gets(http) == (before[0] + 40, before[1] + 40)


def test_a_killed_worker_is_replaced_and_its_counts_kept(served: Served) -> None:
    with served.fresh_connections() as http:
        before = _served_gets(http)
        victim = served.workers()[0]
        victim.kill()
        served.wait_printed(f"(pid {victim.pid}) was killed by SIGKILL; starting it again", seconds=10)
        deadline = time.monotonic() + 30
        while len(served.workers()) < WORKERS:
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.1)
        assert victim.pid not in {w.pid for w in served.workers()}
        for _ in range(10):  # the other worker serves meanwhile; the new one joins once started
            assert http.get("/api/v1/namespaces/default").status_code == 200
        assert _served_gets(http) == (before[0] + 10, before[1] + 10), "a dead worker's counts stay"


def test_sigterm_stops_every_process(served: Served) -> None:
    children = psutil.Process(served.running.process.pid).children(recursive=True)
    assert len(children) > WORKERS  # the workers and multiprocessing's resource tracker
    metrics_dir = Path(served.workers()[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
    assert metrics_dir.is_dir()
    output = served.stop()
    assert served.running.process.returncode == 0, output
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {alive}"
    assert "Traceback" not in output, output
    assert not metrics_dir.exists(), "the workers' metric files outlived the server"
    postgres = served.running.data_dir / "postgres"
    deadline = time.monotonic() + 15
    while _postgres_running(postgres) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _postgres_running(postgres), "fedctl up left its Postgres running"


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path, database_url: str) -> None:
    """SIGKILL leaves the parent no chance to stop anything: the workers notice and stop."""
    running = start_federation(tmp_path / "data", database_url=database_url, extra_args=["--workers", "2"])
    try:
        children = psutil.Process(running.process.pid).children(recursive=True)
        assert len(children) > WORKERS
        worker = next(p for p in children if "spawn_main" in " ".join(p.cmdline()))
        metrics_dir = Path(worker.environ()["PROMETHEUS_MULTIPROC_DIR"])
        with running.client(running.admin_token) as http:  # some metric files to clean up
            assert http.get("/api/v1/namespaces/default").status_code == 200
        running.process.kill()
        running.process.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=20)
        assert not alive, f"left running: {alive}"
    finally:
        output = running.stop()
    assert output.count("parent process ended; stopping this worker") == WORKERS, output
    assert not metrics_dir.exists(), "the last worker out removes the metrics directory"


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"FEDERATION_WORKERS": "0"}, [], "FEDERATION_WORKERS must be at least 1"),
        ({}, ["--workers", "0"], "Invalid value for '--workers'"),
    ],
    ids=["variable", "option"],
)
def test_a_bad_worker_count_is_refused_clearly(
    tmp_path: Path, env: dict[str, str], args: list[str], expected: str
) -> None:
    done = subprocess.run(
        [FEDCTL, "up", "--data-dir", str(tmp_path / "data"), "--port", "0", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "postgres").exists(), "nothing is started before the check"
