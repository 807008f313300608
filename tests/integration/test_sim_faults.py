"""Outages as a client sees them: refused connections, timeouts, HTTP errors, latency; then healing."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from federation.sim import Simulator
from tests.sim_support import api_client, ca_context, wait_until

SICK, WELL = "asia-east1", "europe-west1"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    kubeconfig = tmp_path_factory.mktemp("faults") / "sim.kubeconfig"
    with Simulator(
        [SICK, WELL], kubeconfig=kubeconfig, nodes=1, pods_per_node=50, start_delay=0.05
    ) as running:
        yield running


@pytest.fixture
def sick(sim: Simulator) -> Iterator[client.ApiClient]:
    with api_client(sim.kubeconfig, SICK) as made:
        try:
            yield made
        finally:
            sim.heal(SICK)


@pytest.fixture
def workload(sim: Simulator) -> Iterator[dict[str, Any]]:
    """A namespace with a ready pod behind a LoadBalancer Service in the sick cluster."""
    ns = f"f-{uuid.uuid4().hex[:6]}"
    with api_client(sim.kubeconfig, SICK) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": ns}})
        core.create_namespaced_secret(ns, {"metadata": {"name": "keep"}, "stringData": {"k": "v"}})
        apps.create_namespaced_replica_set(
            ns,
            {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                    },
                },
            },
        )
        core.create_namespaced_service(
            ns,
            {
                "metadata": {"name": "web"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
            },
        )
        svc = wait_until(lambda: core.read_namespaced_service("web", ns).status.load_balancer.ingress)
        port = svc[0].ports[0].port
        wait_until(lambda: (apps.read_namespaced_replica_set("web", ns).status.ready_replicas or 0) == 1)
        secret_rv = core.read_namespaced_secret("keep", ns).metadata.resource_version
    yield {"namespace": ns, "address": f"http://127.0.0.1:{port}", "secret_rv": secret_rv}
    sim.heal(SICK)
    with api_client(sim.kubeconfig, SICK) as api:
        client.CoreV1Api(api).delete_namespace(ns)


def fetch(url: str, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a GET to a regional address (``{"text": ...}`` for a plain answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, {"text": raw.decode()}


def assert_intact(api: client.ApiClient, workload: dict[str, Any]) -> None:
    secret = client.CoreV1Api(api).read_namespaced_secret("keep", workload["namespace"])
    assert secret.metadata.resource_version == workload["secret_rv"]


def test_the_address_names_cluster_and_pod_and_turns_503_without_ready_pods(
    sim: Simulator, workload: dict[str, Any]
) -> None:
    code, body = fetch(workload["address"] + "/hello")
    assert code == 200
    assert body["cluster"] == SICK
    assert body["pod"].startswith("web-")
    assert body["path"] == "/hello"
    with api_client(sim.kubeconfig, SICK) as api:
        client.AppsV1Api(api).patch_namespaced_replica_set_scale(
            "web", workload["namespace"], {"spec": {"replicas": 0}}
        )
    wait_until(lambda: fetch(workload["address"])[0] == 503)
    assert fetch(workload["address"])[1]["error"] == "no ready pods match the service selector"


def test_down_refuses_connections_and_heal_keeps_objects(
    sim: Simulator, sick: client.ApiClient, workload: dict[str, Any]
) -> None:
    sim.fail(SICK, "down")
    with pytest.raises(urllib3.exceptions.NewConnectionError) as caught:
        client.CoreV1Api(sick).list_namespace(_request_timeout=2)
    assert "refused" in str(caught.value).lower()
    with pytest.raises(urllib.error.URLError) as lb:
        fetch(workload["address"])
    assert isinstance(lb.value.reason, ConnectionRefusedError)
    with api_client(sim.kubeconfig, WELL) as well:
        assert client.CoreV1Api(well).list_namespace().items  # one region down, the others serve

    sim.heal(SICK)
    assert_intact(sick, workload)
    assert fetch(workload["address"])[0] == 200


def test_down_ends_open_watches(sim: Simulator, sick: client.ApiClient) -> None:
    core = client.CoreV1Api(sick)
    ended = threading.Event()
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            for _ in watch.Watch().stream(core.list_namespaced_secret, "default", timeout_seconds=20):
                pass
        except (urllib3.exceptions.HTTPError, ApiException) as err:
            failure.append(err)
        finally:
            ended.set()

    watcher = threading.Thread(target=follow)
    watcher.start()
    time.sleep(0.3)
    sim.fail(SICK, "down")
    assert ended.wait(5), "the watch did not notice the outage"
    watcher.join(5)
    assert failure  # the stream broke off; it did not end cleanly


def test_blackhole_accepts_but_never_answers(
    sim: Simulator, sick: client.ApiClient, workload: dict[str, Any]
) -> None:
    sim.fail(SICK, "blackhole")
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        client.CoreV1Api(sick).list_namespace(_request_timeout=(2, 0.5))
    assert time.monotonic() - started >= 0.5
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        fetch(workload["address"], timeout=0.5)
    sim.heal(SICK)
    assert_intact(sick, workload)
    assert fetch(workload["address"])[0] == 200


@pytest.mark.parametrize("status", [500, 503], ids=["500", "503"])
def test_error_answers_a_status_everywhere(
    sim: Simulator, sick: client.ApiClient, workload: dict[str, Any], status: int
) -> None:
    sim.fail(SICK, "error", status=status)
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(sick).list_namespace()
    assert caught.value.status == status
    assert json.loads(caught.value.body)["kind"] == "Status"
    assert raw_get(sim, "/readyz")[0] == status  # health probes fail too
    assert fetch(workload["address"])[0] == status
    sim.heal(SICK)
    assert_intact(sick, workload)


def test_429_carries_retry_after_and_spares_probes(
    sim: Simulator, sick: client.ApiClient, workload: dict[str, Any]
) -> None:
    sim.fail(SICK, "error", status=429, retry_after=3)
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(sick).list_namespace()
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "3"
    assert json.loads(caught.value.body)["details"]["retryAfterSeconds"] == 3
    assert raw_get(sim, "/readyz") == (200, b"ok")
    sim.heal(SICK)
    assert_intact(sick, workload)


def test_slow_adds_latency_to_api_and_addresses(
    sim: Simulator, sick: client.ApiClient, workload: dict[str, Any]
) -> None:
    sim.fail(SICK, "slow", latency=0.4)
    started = time.monotonic()
    client.CoreV1Api(sick).list_namespace()
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    assert fetch(workload["address"])[0] == 200
    assert time.monotonic() - started >= 0.4
    sim.heal(SICK)

    def healed_call() -> float:
        started = time.monotonic()
        client.CoreV1Api(sick).list_namespace()
        return time.monotonic() - started

    # The quickest of three: one call can take longer than the latency on a loaded machine.
    assert min(healed_call() for _ in range(3)) < 0.4


def test_unknown_cluster_is_refused(sim: Simulator) -> None:
    with pytest.raises(LookupError, match="no simulated cluster"):
        sim.fail("nowhere", "down")


def raw_get(sim: Simulator, path: str) -> tuple[int, bytes]:
    """An unauthenticated GET, as a health checker sends it."""
    cluster = sim.cluster(SICK)
    context: ssl.SSLContext = ca_context(sim.kubeconfig, SICK)
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.port, context=context, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_stopping_a_blackholed_simulator_ends_held_requests(tmp_path_factory: pytest.TempPathFactory) -> None:
    kubeconfig = tmp_path_factory.mktemp("stop") / "sim.kubeconfig"
    outcome: list[BaseException] = []
    with Simulator(["solo"], kubeconfig=kubeconfig, nodes=1) as solo, api_client(kubeconfig, "solo") as api:
        solo.fail("solo", "blackhole")

        def call() -> None:
            try:
                client.CoreV1Api(api).list_namespace(_request_timeout=20)
            except (urllib3.exceptions.HTTPError, ApiException) as err:
                outcome.append(err)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.3)
        started = time.monotonic()
        solo.stop()
        assert time.monotonic() - started < 5
        caller.join(10)
    assert not caller.is_alive()
    assert outcome  # the held request was cut, not answered
