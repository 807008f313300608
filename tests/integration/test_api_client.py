"""The federation API through the official ``kubernetes`` client, as a user's program sees it."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import UnprocessibleEntityError

from tests.servers import FEDCTL, RunningFederation, start_federation

NS = "team-a"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[RunningFederation]:
    url = database_url
    running = start_federation(
        tmp_path_factory.mktemp("fed"), database_url=url, extra_env={"FEDERATION_WATCH_WINDOW": "200"}
    )
    running.database_url = url  # type: ignore[attr-defined]
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(federation: RunningFederation) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(federation.kubeconfig))
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    yield api_client
    api_client.close()


def viewer_client(federation: RunningFederation) -> client.ApiClient:
    token = subprocess.run(
        [FEDCTL, "token", "create", "--role", "viewer", "--data-dir", str(federation.data_dir)],
        env={**_env(), "FEDERATION_DATABASE_URL": federation.database_url},  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    cfg = client.Configuration()
    cfg.host = federation.url
    cfg.ssl_ca_cert = str(federation.ca_file)
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def rs_body(name: str, replicas: int = 3, image: str = "nginx:1.27") -> client.V1ReplicaSet:
    labels = {"app": name}
    return client.V1ReplicaSet(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1ReplicaSetSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image=image)]),
            ),
        ),
    )


def test_initial_namespaces_and_discovery(api: client.ApiClient) -> None:
    names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
    assert {"default", "federation-system", NS} <= names
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps", "federation.io"} <= groups
    assert client.VersionApi(api).get_code().major == "1"


def test_secret_string_data_is_folded_and_viewer_sees_no_data(
    api: client.ApiClient, federation: RunningFederation
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        NS, client.V1Secret(metadata=client.V1ObjectMeta(name="db"), string_data={"password": "s3cr3t"})
    )
    secret = core.read_namespaced_secret("db", NS)
    assert base64.b64decode(secret.data["password"]) == b"s3cr3t"
    assert secret.string_data is None
    assert secret.type == "Opaque"
    viewer = viewer_client(federation)
    try:
        seen = client.CoreV1Api(viewer).read_namespaced_secret("db", NS)
        assert seen.data is None
        listed = client.CoreV1Api(viewer).list_namespaced_secret(NS).items
        assert listed
        assert all(s.data is None for s in listed)
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(viewer).delete_namespaced_secret("db", NS)
        assert err.value.status == 403
    finally:
        viewer.close()
    assert core.read_namespaced_secret("db", NS).data["password"]


def test_replicaset_lifecycle_with_typed_client(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_replica_set(NS, rs_body("web"))
    assert created.metadata.generation == 1
    # Kubernetes' pod template defaults, as `kubectl get -o yaml` shows them on a real cluster
    template = created.spec.template.spec
    assert (template.restart_policy, template.dns_policy, template.termination_grace_period_seconds) == (
        "Always",
        "ClusterFirst",
        30,
    )
    assert template.containers[0].image_pull_policy == "IfNotPresent"
    assert created.metadata.uid
    # strategic merge patch: change one container's image by merge key
    patched = apps.patch_namespaced_replica_set(
        "web", NS, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}}
    )
    assert patched.spec.template.spec.containers[0].image == "nginx:1.28"
    assert patched.metadata.generation == 2
    scale = apps.patch_namespaced_replica_set_scale("web", NS, {"spec": {"replicas": 5}})
    assert scale.spec.replicas == 5
    assert apps.read_namespaced_replica_set("web", NS).spec.replicas == 5
    assert apps.read_namespaced_replica_set_scale("web", NS).status.selector == "app=web"
    # status goes through /status only, and does not bump generation
    status = apps.read_namespaced_replica_set("web", NS)
    status.status.replicas = 5
    status.status.ready_replicas = 4
    written = apps.replace_namespaced_replica_set_status("web", NS, status)
    assert written.status.ready_replicas == 4
    assert written.metadata.generation == 3
    labelled = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    assert [r.metadata.name for r in labelled] == ["web"]
    assert apps.list_namespaced_replica_set(NS, label_selector="app=other").items == []
    apps.delete_namespaced_replica_set("web", NS)
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_replica_set("web", NS)
    assert err.value.status == 404


def test_dynamic_client_through_discovery(api: client.ApiClient) -> None:
    dyn = DynamicClient(api)
    rs_api = dyn.resources.get(api_version="apps/v1", kind="ReplicaSet")
    body = api.sanitize_for_serialization(rs_body("dyn", replicas=2))
    rs_api.create(body=body, namespace=NS)
    assert rs_api.get(name="dyn", namespace=NS).spec.replicas == 2
    clusters = dyn.resources.get(api_version="federation.io/v1alpha1", kind="Cluster")
    clusters.create(
        body={
            "apiVersion": "federation.io/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "taiwan", "labels": {"topology.kubernetes.io/region": "asia-east1"}},
            "spec": {"server": "https://127.0.0.1:9443", "secretRef": {"name": "taiwan-creds"}},
        }
    )
    assert clusters.get(name="taiwan").spec.server == "https://127.0.0.1:9443"
    with pytest.raises(UnprocessibleEntityError) as err:
        clusters.create(
            body={
                "apiVersion": "federation.io/v1alpha1",
                "kind": "Cluster",
                "metadata": {"name": "bad"},
                "spec": {"server": "ftp://x"},
            }
        )
    assert getattr(err.value, "status", None) == 422
    rs_api.delete(name="dyn", namespace=NS)
    clusters.delete(name="taiwan")


def test_same_resource_version_exactly_one_update_wins(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        NS, client.V1Secret(metadata=client.V1ObjectMeta(name="race"), string_data={"v": "0"})
    )
    base = core.read_namespaced_secret("race", NS)
    results: list[int] = []

    def write(value: str) -> None:
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name="race", resource_version=base.metadata.resource_version),
            string_data={"v": value},
        )
        try:
            core.replace_namespaced_secret("race", NS, body)
            results.append(200)
        except ApiException as exc:
            results.append(exc.status)

    threads = [threading.Thread(target=write, args=(value,)) for value in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409]


def test_watch_from_version_sees_every_later_change_once_in_order(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_secret(NS).metadata.resource_version
    names = [f"w{i}" for i in range(5)]
    for n in names:
        core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name=n)))
    core.patch_namespaced_secret("w0", NS, {"metadata": {"labels": {"x": "y"}}})
    core.delete_namespaced_secret("w1", NS)
    seen: list[tuple[str, str]] = []
    versions: list[int] = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_secret, NS, resource_version=start, timeout_seconds=5):
        name = event["object"].metadata.name
        if name.startswith("w"):
            seen.append((event["type"], name))
            versions.append(int(event["object"].metadata.resource_version))
        if len(seen) == 7:
            w.stop()
    assert seen == [("ADDED", n) for n in names] + [("MODIFIED", "w0"), ("DELETED", "w1")]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


def test_watch_from_a_version_older_than_the_window_is_gone(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for i in range(210):  # the test server keeps a window of 200 changes
        core.create_namespaced_event(
            NS,
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(name=f"e{i}"),
                involved_object=client.V1ObjectReference(kind="Pod", name="p"),
                reason="Test",
                message="filler",
            ),
        )
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(
            core.list_namespaced_event, NS, resource_version="1", timeout_seconds=5
        ):
            pass
    assert err.value.status == 410


def test_namespace_deletion_deletes_contents(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    core.create_namespaced_secret("doomed", client.V1Secret(metadata=client.V1ObjectMeta(name="s")))
    apps.create_namespaced_replica_set("doomed", rs_body("r"))
    core.delete_namespace("doomed")
    assert core.read_namespace("doomed").status.phase == "Terminating"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_secret("doomed", client.V1Secret(metadata=client.V1ObjectMeta(name="late")))
    assert err.value.status == 403
    deadline = time.monotonic() + 10
    remaining = {ns.metadata.name for ns in core.list_namespace().items}
    while "doomed" in remaining and time.monotonic() < deadline:
        time.sleep(0.1)
        remaining = {ns.metadata.name for ns in core.list_namespace().items}
    assert "doomed" not in remaining
    with pytest.raises(ApiException) as err:
        core.read_namespace("doomed")
    assert err.value.status == 404
    assert core.list_secret_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []


def test_finalizers_hold_deletion_until_removed(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        NS,
        client.V1Secret(metadata=client.V1ObjectMeta(name="held", finalizers=["federation.io/propagation"])),
    )
    core.delete_namespaced_secret("held", NS)
    held = core.read_namespaced_secret("held", NS)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_secret("held", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_secret("held", NS)
    assert err.value.status == 404


def test_paging_with_limit_and_continue(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="paged")))
    for i in range(7):
        core.create_namespaced_secret("paged", client.V1Secret(metadata=client.V1ObjectMeta(name=f"p{i}")))
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_secret("paged", limit=3, _continue=token)
        names += [s.metadata.name for s in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"p{i}" for i in range(7)]
    assert pages == 3


# ---------------------------------------------------------------- bad input changes nothing


def _raw(
    federation: RunningFederation,
    method: str,
    path: str,
    body: bytes | None,
    content_type: str = "application/json",
    token: str | None = "admin",
) -> tuple[int, dict]:  # type: ignore[type-arg]
    tok = federation.admin_token if token == "admin" else token
    with federation.client(tok) as http:
        response = http.request(method, path, content=body, headers={"Content-Type": content_type})
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("path", "body", "code", "reason"),
    [
        (f"/api/v1/namespaces/{NS}/secrets", b'{"metadata": {"name": "x"', 400, "BadRequest"),
        (
            f"/api/v1/namespaces/{NS}/secrets",
            b'{"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}}',
            400,
            "BadRequest",
        ),
        (f"/api/v1/namespaces/{NS}/secrets", b'{"metadata": {"name": "Bad_Name"}}', 422, "Invalid"),
        (
            f"/api/v1/namespaces/{NS}/secrets",
            b'{"metadata": {"name": "x"}, "data": {"k": "not base64!"}}',
            400,
            "BadRequest",
        ),
        ("/api/v1/namespaces/missing/secrets", b'{"metadata": {"name": "x"}}', 404, "NotFound"),
        (
            f"/apis/apps/v1/namespaces/{NS}/replicasets",
            json.dumps(
                {
                    "metadata": {"name": "x"},
                    "spec": {
                        "replicas": -1,
                        "selector": {"matchLabels": {"a": "b"}},
                        "template": {
                            "metadata": {"labels": {"a": "c"}},
                            "spec": {"containers": [{"name": "c", "image": "i"}]},
                        },
                    },
                }
            ).encode(),
            422,
            "Invalid",
        ),
        (
            f"/api/v1/namespaces/{NS}/secrets?fieldValidation=Strict",
            b'{"metadata": {"name": "x"}, "bogus": 1}',
            400,
            "BadRequest",
        ),
    ],
    ids=[
        "malformed-json",
        "wrong-kind",
        "bad-name",
        "bad-base64",
        "missing-namespace",
        "rs-invalid",
        "unknown-field",
    ],
)
def test_bad_input_gets_status_and_changes_nothing(
    federation: RunningFederation, api: client.ApiClient, path: str, body: bytes, code: int, reason: str
) -> None:
    core = client.CoreV1Api(api)
    before = core.list_secret_for_all_namespaces().metadata.resource_version
    status, answer = _raw(federation, "POST", path, body)
    assert (status, answer["kind"], answer["reason"], answer["code"]) == (code, "Status", reason, code)
    if reason == "Invalid":
        assert answer["details"]["causes"][0]["field"]
    assert core.list_secret_for_all_namespaces().metadata.resource_version == before


def test_invalid_replicaset_names_the_fields(federation: RunningFederation, api: client.ApiClient) -> None:
    body = {
        "metadata": {"name": "x"},
        "spec": {
            "replicas": -1,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "c"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    _, answer = _raw(
        federation, "POST", f"/apis/apps/v1/namespaces/{NS}/replicasets", json.dumps(body).encode()
    )
    fields = {c["field"] for c in answer["details"]["causes"]}
    assert fields == {"spec.replicas", "spec.template.metadata.labels"}


def test_oversized_body_no_token_and_unsupported_patch(
    federation: RunningFederation, api: client.ApiClient
) -> None:
    big = json.dumps(
        {"metadata": {"name": "big"}, "stringData": {"k": "x" * (3 * 1024 * 1024 + 10)}}
    ).encode()
    status, answer = _raw(federation, "POST", f"/api/v1/namespaces/{NS}/secrets", big)
    assert (status, answer["reason"]) == (413, "RequestEntityTooLarge")
    status, answer = _raw(federation, "GET", f"/api/v1/namespaces/{NS}/secrets", None, token=None)
    assert (status, answer["reason"]) == (401, "Unauthorized")
    status, answer = _raw(federation, "GET", "/api/v1/namespaces", None, token="not-a-token")
    assert status == 401
    status, answer = _raw(
        federation, "PATCH", f"/api/v1/namespaces/{NS}", b"{}", content_type="application/xml"
    )
    assert (status, answer["reason"]) == (415, "UnsupportedMediaType")
    with federation.client() as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
        assert http.get("/version").status_code == 401


def test_already_exists_and_not_found(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="dup")))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="dup")))
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_secret("nope", NS)
    assert err.value.status == 404
    assert json.loads(err.value.body)["details"]["name"] == "nope"


def test_kubeconfig_is_private(federation: RunningFederation) -> None:
    assert Path(federation.kubeconfig).stat().st_mode & 0o077 == 0
    assert (federation.data_dir / "encryption.key").stat().st_mode & 0o077 == 0


def test_json_patch_and_field_validation_modes(federation: RunningFederation, api: client.ApiClient) -> None:
    path = f"/api/v1/namespaces/{NS}/secrets"
    with federation.client(federation.admin_token) as http:
        warned = http.post(path, json={"metadata": {"name": "warned"}, "bogus": 1})  # default: Warn
        assert warned.status_code == 201
        assert warned.headers["warning"] == '299 - "unknown field \\"bogus\\""'
        assert "bogus" not in warned.json()
        ignored = http.post(
            f"{path}?fieldValidation=Ignore", json={"metadata": {"name": "ignored"}, "bogus": 1}
        )
        assert ignored.status_code == 201
        assert "warning" not in ignored.headers
        patched = http.patch(
            f"{path}/ignored",
            content=json.dumps([{"op": "add", "path": "/metadata/labels", "value": {"tier": "db"}}]),
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert patched.status_code == 200
        assert patched.json()["metadata"]["labels"] == {"tier": "db"}
        failed = http.patch(
            f"{path}/ignored",
            content=json.dumps([{"op": "test", "path": "/metadata/labels/tier", "value": "web"}]),
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert failed.status_code == 422
        assert http.get(f"{path}/ignored").json()["metadata"]["labels"] == {"tier": "db"}
        dry = http.post(f"{path}?dryRun=All", json={"metadata": {"name": "dry"}})
        assert dry.status_code == 201
        assert http.get(f"{path}/dry").status_code == 404
