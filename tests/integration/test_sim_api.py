"""A simulated cluster through the official client, typed and dynamic, as the federation reaches it."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from federation.sim import ClusterSpec, Simulator, address_of
from tests.sim_support import api_client, ca_context, kept_after_idle, wait_until

CLUSTER = "us-central1"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    kubeconfig = tmp_path_factory.mktemp("sim") / "sim.kubeconfig"
    specs = [
        ClusterSpec(CLUSTER, nodes=2, pods_per_node=3, start_delay=0.05),
        ClusterSpec("tiny-window", nodes=1, pods_per_node=3, start_delay=0.05, watch_window=5),
    ]
    with Simulator(specs, kubeconfig=kubeconfig) as running:
        yield running


@pytest.fixture(scope="module")
def api(sim: Simulator) -> Iterator[client.ApiClient]:
    with api_client(sim.kubeconfig, CLUSTER) as made:
        yield made


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    try:
        client.CoreV1Api(api).delete_namespace(name)
    except ApiException as err:
        if err.status != 404:
            raise


def replicaset(name: str, replicas: int, image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


def test_version(api: client.ApiClient) -> None:
    version = client.VersionApi(api).get_code()
    assert (version.major, version.minor) == ("1", "32")
    assert version.git_version.endswith("-sim")


def test_discovery_and_the_system_objects(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    names = {r.name for r in core.get_api_resources().resources}
    assert {
        "namespaces",
        "secrets",
        "events",
        "nodes",
        "pods",
        "pods/status",
        "services",
        "services/status",
    } <= names
    assert {ns.metadata.name for ns in core.list_namespace().items} >= {"default", "kube-system"}
    (kubernetes_svc,) = core.list_namespaced_service("default").items
    assert kubernetes_svc.metadata.name == "kubernetes"
    assert kubernetes_svc.spec.cluster_ip.endswith(".0.1")
    nodes = core.list_node(label_selector=f"topology.kubernetes.io/region={CLUSTER}").items
    assert [n.metadata.name for n in nodes] == [f"{CLUSTER}-node-0", f"{CLUSTER}-node-1"]
    assert {n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes} == {
        f"{CLUSTER}-a",
        f"{CLUSTER}-b",
    }
    assert all(n.status.allocatable["pods"] == "3" for n in nodes)


def test_an_idle_connection_is_kept_as_a_kubernetes_api_server_keeps_it(
    sim: Simulator, api: client.ApiClient
) -> None:
    """Clients pool connections for 90 s (Go's transport, kubectl); the simulator closed them after
    uvicorn's 5 s, racing the next request that took one up ("Remote end closed connection without
    response" in a benchmark's direct writes)."""
    authorization = api.configuration.get_api_key_with_prefix("BearerToken")
    kept = kept_after_idle(api.configuration.host, ca_context(sim.kubeconfig, CLUSTER), authorization, idle=6)
    assert kept, "the server closed an idle connection within 6 s"


def test_every_cluster_has_its_own_context_and_token(sim: Simulator) -> None:
    with api_client(sim.kubeconfig, "tiny-window") as other:
        nodes = client.CoreV1Api(other).list_node().items
    assert [n.metadata.name for n in nodes] == ["tiny-window-node-0"]
    assert sim.cluster(CLUSTER).token != sim.cluster("tiny-window").token


def test_requests_without_a_token_get_401(sim: Simulator) -> None:
    with api_client(sim.kubeconfig, CLUSTER, token=False) as anonymous, pytest.raises(ApiException) as caught:
        client.CoreV1Api(anonymous).list_namespace()
    assert caught.value.status == 401
    assert status_of(caught.value)["reason"] == "Unauthorized"


def test_dynamic_client_round_trip(api: client.ApiClient, namespace: str) -> None:
    dynamic = DynamicClient(api)
    secrets = dynamic.resources.get(api_version="v1", kind="Secret")
    created = secrets.create(
        body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"pw": "x"}},
        namespace=namespace,
    )
    assert created.data.pw == "eA=="
    services = dynamic.resources.get(api_version="v1", kind="Service")
    services.create(
        body={
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}},
        },
        namespace=namespace,
    )
    listed = services.get(namespace=namespace)
    assert [s.metadata.name for s in listed.items] == ["web"]
    rs = dynamic.resources.get(api_version="apps/v1", kind="ReplicaSet")
    rs.create(body=replicaset("web", 1), namespace=namespace)
    assert rs.get(name="web", namespace=namespace).spec.replicas == 1
    secrets.delete(name="db", namespace=namespace)
    with pytest.raises(ApiException) as caught:
        secrets.get(name="db", namespace=namespace)
    assert caught.value.status == 404


def test_conflicts_not_found_and_invalid(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}})
    assert (exists.value.status, status_of(exists.value)["reason"]) == (409, "AlreadyExists")

    current = core.read_namespaced_secret("s", namespace)
    core.patch_namespaced_secret("s", namespace, {"metadata": {"labels": {"v": "2"}}})
    current.metadata.labels = {"v": "stale"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_secret("s", namespace, current)
    assert (stale.value.status, status_of(stale.value)["reason"]) == (409, "Conflict")

    with pytest.raises(ApiException) as missing_ns:
        core.create_namespaced_secret("no-such-namespace", {"metadata": {"name": "s"}})
    assert missing_ns.value.status == 404
    assert status_of(missing_ns.value)["details"]["kind"] == "namespaces"

    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_service(
            namespace, {"metadata": {"name": "bad"}, "spec": {"ports": [{"port": 0}]}}
        )
    assert invalid.value.status == 422
    causes = status_of(invalid.value)["details"]["causes"]
    assert "spec.ports[0].port" in [c["field"] for c in causes]


def test_replicaset_pods_selectors_and_events(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_replica_set(namespace, replicaset("web", 2))
    wait_until(lambda: (apps.read_namespaced_replica_set("web", namespace).status.ready_replicas or 0) == 2)
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    assert all(p.metadata.owner_references[0].kind == "ReplicaSet" for p in pods)
    running = core.list_namespaced_pod(namespace, field_selector="status.phase=Running").items
    assert len(running) == 2
    node = pods[0].spec.node_name
    on_node = core.list_namespaced_pod(namespace, field_selector=f"spec.nodeName={node}").items
    assert pods[0].metadata.name in {p.metadata.name for p in on_node}
    assert core.list_namespaced_pod(namespace, label_selector="app=other").items == []
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.kind=ReplicaSet").items
    assert {e.reason for e in events} == {"SuccessfulCreate"}


def test_generation_observed_generation_and_patches(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_replica_set(namespace, replicaset("web", 1))
    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}}
    patched = apps.patch_namespaced_replica_set(
        "web", namespace, strategic, _content_type="application/strategic-merge-patch+json"
    )
    assert patched.metadata.generation == 2
    assert patched.spec.template.spec.containers[0].image == "nginx:1.28"
    merged = apps.patch_namespaced_replica_set(
        "web",
        namespace,
        {"metadata": {"labels": {"tier": "front"}}},
        _content_type="application/merge-patch+json",
    )
    assert merged.metadata.generation == 2  # metadata only
    jsonpatch = [{"op": "replace", "path": "/spec/replicas", "value": 2}]
    apps.patch_namespaced_replica_set(
        "web", namespace, jsonpatch, _content_type="application/json-patch+json"
    )
    done = wait_until(
        lambda: apps.read_namespaced_replica_set("web", namespace).status.observed_generation == 3
    )
    assert done
    status = apps.read_namespaced_replica_set("web", namespace).status
    wait_until(lambda: (apps.read_namespaced_replica_set("web", namespace).status.ready_replicas or 0) == 2)
    assert status.replicas == 2


def test_scale_subresource(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_replica_set(namespace, replicaset("web", 1))
    scale = apps.read_namespaced_replica_set_scale("web", namespace)
    assert scale.spec.replicas == 1
    apps.patch_namespaced_replica_set_scale("web", namespace, {"spec": {"replicas": 3}})
    wait_until(lambda: apps.read_namespaced_replica_set("web", namespace).status.replicas == 3)
    scale = apps.read_namespaced_replica_set_scale("web", namespace)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (3, 3, "app=web")


def test_watch_resumes_from_a_version(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_secret(namespace).metadata.resource_version
    core.create_namespaced_secret(namespace, {"metadata": {"name": "a"}})
    core.create_namespaced_secret(namespace, {"metadata": {"name": "b"}})
    core.delete_namespaced_secret("a", namespace)
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_secret, namespace, resource_version=start, timeout_seconds=2
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            stream.stop()
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    after_b = core.read_namespaced_secret("b", namespace).metadata.resource_version
    resumed = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_secret, namespace, resource_version=after_b, timeout_seconds=1
        )
    ]
    assert resumed == [("DELETED", "a")]


def test_watch_from_a_version_out_of_the_window_is_gone(sim: Simulator) -> None:
    with api_client(sim.kubeconfig, "tiny-window") as tiny:
        core = client.CoreV1Api(tiny)
        first = core.list_namespaced_secret("default").metadata.resource_version
        for i in range(8):
            core.create_namespaced_secret("default", {"metadata": {"name": f"s{i}"}})
        with pytest.raises(ApiException) as caught:
            for _ in watch.Watch().stream(
                core.list_namespaced_secret, "default", resource_version=first, timeout_seconds=2
            ):
                pass
    assert caught.value.status == 410


def test_service_addresses_and_status_only_through_the_status_subresource(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    lb = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    assert lb.spec.cluster_ip.startswith("10.128.")
    assert 30000 <= lb.spec.ports[0].node_port <= 32767
    ready = wait_until(lambda: core.read_namespaced_service("web", namespace).status.load_balancer.ingress)
    assert ready[0].ip == "127.0.0.1"
    assert ready[0].ports[0].port > 0

    plain = core.create_namespaced_service(
        namespace,
        {"metadata": {"name": "plain"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}},
    )
    plain.status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}
    replaced = core.replace_namespaced_service("plain", namespace, plain)
    assert replaced.status.load_balancer.ingress is None
    via_status = core.patch_namespaced_service_status(
        "plain", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}}
    )
    assert via_status.status.load_balancer.ingress[0].ip == "203.0.113.9"


def test_deleting_a_namespace_removes_its_contents_and_addresses(
    api: client.ApiClient, sim: Simulator
) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns = f"gone-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    apps.create_namespaced_replica_set(ns, replicaset("web", 2))
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    svc = wait_until(lambda: core.read_namespaced_service("web", ns) if address_of_typed(core, ns) else None)
    port = svc.status.load_balancer.ingress[0].ports[0].port
    wait_until(lambda: len(core.list_namespaced_pod(ns).items) == 2)
    core.delete_namespace(ns)
    wait_until(lambda: ns not in {n.metadata.name for n in core.list_namespace().items})
    assert core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={ns}").items == []
    wait_until(lambda: _refused(port), what="the address to close")


def address_of_typed(core: client.CoreV1Api, ns: str) -> str | None:
    raw = core.read_namespaced_service("web", ns, _preload_content=False)
    try:
        return address_of(json.loads(raw.data))
    finally:
        raw.release_conn()


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_a_stopped_simulator_frees_its_ports(tmp_path: Path) -> None:
    with Simulator(["solo"], kubeconfig=tmp_path / "k", nodes=1) as solo:
        port = solo.cluster("solo").port
    assert _refused(port)
