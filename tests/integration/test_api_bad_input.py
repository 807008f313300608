"""Bad input gets a 4xx ``metav1.Status`` naming what is wrong, never a 500 (issue 9).

Each case is one that schemathesis found answered with a 500 (or accepted when Kubernetes refuses
it), or one of the same class found while fixing them. Every case runs against both servers the
machinery serves, a ``fedctl up`` over Postgres and a simulated member cluster over memory, through
HTTPS with a bearer token as any client; and every case checks that what it aimed at is unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from federation.apimachinery import MemoryStorage, Principal, SchemaSet, Scheme, build_app
from federation.apimachinery.auth import static_token_authenticator
from federation.apimachinery.kinds import CORE_KINDS
from federation.sim import ClusterSpec, Simulator
from tests.fuzzing import Endpoint, kubeconfig_endpoint
from tests.servers import start_federation

NS = "bad-input"
NS_PATH = f"/api/v1/namespaces/{NS}"
SECRET = f"{NS_PATH}/secrets/kept"
RS = f"/apis/apps/v1/namespaces/{NS}/replicasets/kept"
NON_LATIN1 = "名前-ü-\U0001f600"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Endpoint]:
    running = start_federation(tmp_path_factory.mktemp("fed"), database_url=database_url)
    yield Endpoint(running.url, running.ca_file, running.admin_token)
    running.stop()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    folder = tmp_path_factory.mktemp("sim")
    with Simulator([ClusterSpec("bad-input", nodes=1, start_delay=0.05)], kubeconfig=folder / "k") as sim:
        yield kubeconfig_endpoint(sim.kubeconfig, "bad-input", folder / "ca.crt")


@pytest.fixture(scope="module", params=["federation", "simulated"])
def api(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """An admin client of either server, with the namespace, a Secret and a ReplicaSet in place."""
    endpoint: Endpoint = request.getfixturevalue(request.param)
    with endpoint.client() as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).status_code == 201
        secret = {"metadata": {"name": "kept"}, "stringData": {"key": "value"}}
        assert client.post(f"{NS_PATH}/secrets", json=secret).status_code == 201
        assert client.post(RS.rsplit("/", 1)[0], json=_replicaset("kept")).status_code == 201
        if request.param == "simulated":  # its ReplicaSet controller writes the status once: wait for it
            deadline = time.monotonic() + 15
            while client.get(RS).json().get("status", {}).get("observedGeneration") != 1:
                assert time.monotonic() < deadline, client.get(RS).text
                time.sleep(0.1)
        yield client


def _replicaset(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


def _status(response: httpx.Response, code: int) -> dict[str, Any]:
    """The ``metav1.Status`` of an error answer, checked against its HTTP status."""
    assert response.status_code == code, f"{response.status_code}: {response.text}"
    body: dict[str, Any] = response.json()
    assert (body["kind"], body["apiVersion"], body["status"]) == ("Status", "v1", "Failure"), body
    assert body["code"] == code
    assert body["reason"]
    assert body["message"]
    return body


def _warnings(response: httpx.Response) -> str:
    """The ``Warning`` headers as the bytes on the wire read as UTF-8 (what Kubernetes sends)."""
    return " ".join(v.decode("utf-8") for k, v in response.headers.raw if k.lower() == b"warning")


class Unchanged:
    """What ``path`` holds now; :meth:`check` asserts it is the same later (resourceVersion included)."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.client, self.path = client, path
        self.before = self._read()

    def _read(self) -> dict[str, Any]:
        got = self.client.get(self.path)
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    def check(self) -> None:
        assert self._read() == self.before


# ------------------------------------------------------------------------------ the cases


def test_create_without_a_name_is_422_naming_metadata_name(api: httpx.Client) -> None:
    before = len(api.get("/api/v1/namespaces").json()["items"])
    body = _status(api.post("/api/v1/namespaces", json={}), 422)
    assert [c["field"] for c in body["details"]["causes"]] == ["metadata.name"]
    assert "name or generateName is required" in body["message"]
    assert len(api.get("/api/v1/namespaces").json()["items"]) == before
    _status(api.post(f"{NS_PATH}/secrets", json={"stringData": {"a": "b"}}), 422)


@pytest.mark.parametrize("dry_run", [5, "All", {"a": 1}, [1]], ids=["number", "string", "object", "numbers"])
def test_delete_options_with_a_dry_run_that_is_no_list_of_strings_is_400(
    api: httpx.Client, dry_run: Any
) -> None:
    kept = Unchanged(api, SECRET)
    body = _status(api.request("DELETE", SECRET, json={"dryRun": dry_run}), 400)
    assert "dryRun" in body["message"]
    kept.check()


def test_unknown_field_names_outside_latin1_are_warned_about_in_utf8(api: httpx.Client) -> None:
    kept = Unchanged(api, NS_PATH)
    patch = {NON_LATIN1: 1, "metadata": {f"{NON_LATIN1}\r\nX-Injected: 1": "x"}}
    for path in (NS_PATH, f"{NS_PATH}/status"):
        done = api.patch(path, json=patch, headers={"Content-Type": "application/merge-patch+json"})
        assert done.status_code == 200, done.text
        text = _warnings(done)
        assert f'unknown field \\"{NON_LATIN1}\\"' in text
        assert "X-Injected" not in done.headers  # a newline in a field name splits no header
    kept.check()
    body = _status(
        api.patch(
            NS_PATH,
            params={"fieldValidation": "Strict"},
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        ),
        400,
    )
    assert f'unknown field "{NON_LATIN1}"' in body["message"]
    kept.check()


def test_names_outside_latin1_in_the_path_get_a_status(api: httpx.Client) -> None:
    kept = Unchanged(api, NS_PATH)
    named = f"/api/v1/namespaces/{NON_LATIN1}"
    _status(api.get(named), 404)
    _status(api.delete(named), 404)
    body = _status(api.put(named, json={"metadata": {"name": NON_LATIN1}}), 404)
    assert NON_LATIN1 in body["message"]
    body = _status(api.put(f"{named}/status", json={"metadata": {"name": NON_LATIN1}}), 404)
    _status(api.put(NS_PATH, json={"metadata": {"name": NON_LATIN1}}), 400)
    kept.check()


@pytest.mark.parametrize(
    "body",
    [{}, {"status": {"phase": "Terminating"}}, {"metadata": {"name": "other"}, "status": {}}],
    ids=["empty", "no-metadata", "other-name"],
)
def test_put_of_a_body_not_naming_the_url_is_400(api: httpx.Client, body: dict[str, Any]) -> None:
    kept = Unchanged(api, "/api/v1/namespaces/default")
    for path in ("/api/v1/namespaces/default/status", "/api/v1/namespaces/default"):
        status = _status(api.put(path, json=body), 400)
        assert "does not match the name on the URL (default)" in status["message"]
    kept.check()


# ------------------------------------------------------------------- the same classes, found since


def test_lone_surrogates_read_as_the_replacement_character(api: httpx.Client) -> None:
    raw = b'{"metadata": {"name": "lone"}, "stringData": {"k\\ud800": "v\\udfff"}}'
    body = _status(api.post(f"{NS_PATH}/secrets", content=raw), 422)
    assert body["details"]["causes"][0]["field"] == "data[k\ufffd]"
    _status(api.get(f"{NS_PATH}/secrets/lone"), 404)
    kept = Unchanged(api, NS_PATH)
    done = api.patch(
        NS_PATH,
        content=b'{"\\udbff": 1}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert done.status_code == 200, done.text
    assert "\ufffd" in _warnings(done)
    kept.check()


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (f"{NS_PATH}/secrets", {"limit": "²"}, "limit"),
        (f"{NS_PATH}/secrets", {"limit": "-1"}, "limit"),
        (f"{NS_PATH}/secrets", {"limit": "9" * 30}, "limit"),
        (f"{NS_PATH}/secrets", {"watch": "true", "timeoutSeconds": "x"}, "timeoutSeconds"),
        (f"{NS_PATH}/secrets", {"watch": "true", "timeoutSeconds": "-5"}, "timeoutSeconds"),
        (f"{NS_PATH}/secrets", {"watch": "true", "resourceVersion": "²"}, "resourceVersion"),
        (f"{NS_PATH}/secrets", {"watch": "true", "resourceVersion": "9" * 30}, "resourceVersion"),
    ],
    ids=[
        "limit-superscript",
        "limit-negative",
        "limit-huge",
        "timeout-text",
        "timeout-negative",
        "rv-sup",
        "rv-huge",
    ],
)
def test_query_numbers_that_are_no_int64_are_400_naming_the_parameter(
    api: httpx.Client, path: str, params: dict[str, str], field: str
) -> None:
    body = _status(api.get(path, params=params), 400)
    assert field in body["message"]


def test_huge_limit_within_int64_lists_everything(api: httpx.Client) -> None:
    listed = api.get(f"{NS_PATH}/secrets", params={"limit": str(2**63 - 1)})
    assert listed.status_code == 200, listed.text
    assert "kept" in [s["metadata"]["name"] for s in listed.json()["items"]]


def test_resource_version_that_is_no_decimal_is_400(api: httpx.Client) -> None:
    kept = Unchanged(api, SECRET)
    patch = {"metadata": {"resourceVersion": "²"}}
    headers = {"Content-Type": "application/merge-patch+json"}
    _status(api.patch(SECRET, json=patch, headers=headers), 400)
    current = api.get(SECRET).json()
    current["metadata"]["resourceVersion"] = "9" * 30
    _status(api.put(SECRET, json=current), 400)
    kept.check()


@pytest.mark.parametrize("method", ["DELETE", "POST"])
def test_subresources_take_get_update_and_patch_only(api: httpx.Client, method: str) -> None:
    kept = Unchanged(api, NS_PATH)
    kept_rs = Unchanged(api, RS)
    _status(api.request(method, f"{NS_PATH}/status"), 405)
    _status(api.request(method, f"{RS}/scale"), 405)
    _status(api.request(method, f"{RS}/status"), 405)
    kept.check()
    kept_rs.check()


def test_methods_no_route_takes_and_unknown_paths_get_a_status(api: httpx.Client) -> None:
    _status(api.request("TRACE", NS_PATH), 405)
    _status(api.request("OPTIONS", "/apis/apps/v1"), 405)
    _status(api.get("/no/such/path"), 404)


def test_null_list_items_decode_as_empty_ones(api: httpx.Client) -> None:
    rs = _replicaset("nulls")
    rs["spec"]["template"]["spec"]["containers"] = [None]
    body = _status(api.post(RS.rsplit("/", 1)[0], json=rs), 422)
    fields = {c["field"] for c in body["details"]["causes"]}
    assert "spec.template.spec.containers[0].name" in fields
    kept = Unchanged(api, RS)
    patch = {"spec": {"template": {"spec": {"containers": [None]}}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    _status(api.patch(RS, json=patch, headers=headers), 422)
    kept.check()


def test_delete_options_with_an_unknown_propagation_policy_are_422(api: httpx.Client) -> None:
    kept = Unchanged(api, SECRET)
    body = _status(api.request("DELETE", SECRET, json={"propagationPolicy": "Sideways"}), 422)
    assert body["details"]["causes"][0]["field"] == "propagationPolicy"
    _status(api.delete(SECRET, params={"propagationPolicy": "Sideways"}), 422)
    _status(api.delete(SECRET, params={"gracePeriodSeconds": "soon"}), 400)
    body = _status(api.request("DELETE", SECRET, json={"preconditions": []}), 400)
    assert "preconditions" in body["message"]
    kept.check()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"metadata": {"name": "kept"}, "spec": []}, 400),
        ({"metadata": {"name": "kept"}, "spec": {"replicas": "3"}}, 400),
        ({"metadata": [], "spec": {"replicas": 3}}, 400),
        ({"spec": {"replicas": 3}}, 400),
        ({"metadata": {"name": "kept"}, "spec": {"replicas": -1}}, 422),
        ([1], 400),
    ],
    ids=["spec-list", "replicas-text", "metadata-list", "no-name", "negative", "no-object"],
)
def test_scale_bodies_are_decoded_as_scales(api: httpx.Client, body: Any, code: int) -> None:
    kept = Unchanged(api, RS)
    _status(api.put(f"{RS}/scale", json=body), code)
    kept.check()


def test_scale_patches_are_decoded_as_scales(api: httpx.Client) -> None:
    kept = Unchanged(api, RS)
    headers = {"Content-Type": "application/merge-patch+json"}
    _status(api.patch(f"{RS}/scale", json={"spec": []}, headers=headers), 400)
    _status(api.patch(f"{RS}/scale", json={"spec": {"replicas": [3]}}, headers=headers), 400)
    kept.check()


def test_many_long_warnings_fit_one_header(api: httpx.Client) -> None:
    kept = Unchanged(api, NS_PATH)
    patch = {f"field-{i}-{'x' * 300}": i for i in range(200)}
    done = api.patch(NS_PATH, json=patch, headers={"Content-Type": "application/merge-patch+json"})
    assert done.status_code == 200, done.text
    assert 0 < len(_warnings(done)) <= 4 * 1024 + 16 * 200
    kept.check()


# ------------------------------------------------------------------------ watches end on their own


@pytest.mark.anyio
async def test_a_watch_without_timeout_ends_between_the_minimum_and_twice_it() -> None:
    token = "watch-test"
    app = build_app(
        scheme=Scheme(CORE_KINDS),
        storage=MemoryStorage(),
        schemas=SchemaSet(),
        authenticator=static_token_authenticator(token, Principal("admin", "admin")),
        version={"major": "1", "minor": "32"},
        title="watch limits",
        min_request_timeout=0.3,
    )
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="https://test", headers=headers) as client:
        durations = []
        for params in ({"watch": "true"}, {"watch": "1", "timeoutSeconds": "0"}, {"watch": "yes"}):
            started = time.monotonic()
            done = await client.get("/api/v1/namespaces/default/secrets", params=params, timeout=5)
            durations.append(time.monotonic() - started)
            assert done.status_code == 200
        capped = time.monotonic()
        done = await client.get(
            "/api/v1/namespaces/default/secrets", params={"watch": "true", "timeoutSeconds": "3600"}
        )
        assert done.status_code == 200
        assert time.monotonic() - capped < 1.5  # a client's timeout is held to twice the minimum
    assert all(0.25 <= d < 1.5 for d in durations), durations
    assert len({round(d, 3) for d in durations}) > 1, durations  # drawn at random, not one fixed end


def test_watch_parameters_read_as_kubernetes_reads_them(api: httpx.Client) -> None:
    listed = api.get(f"{NS_PATH}/secrets", params={"watch": "false"})
    assert listed.json()["kind"] == "SecretList"
    listed = api.get(f"{NS_PATH}/secrets", params={"watch": "0"})
    assert listed.json()["kind"] == "SecretList"
    watched = api.get(f"{NS_PATH}/secrets", params={"watch": "yes", "timeoutSeconds": "1"})
    assert watched.status_code == 200
    first = json.loads(watched.text.splitlines()[0])
    assert first["type"] == "ADDED"


def test_a_cluster_whose_server_is_no_url_is_422(federation: Endpoint) -> None:
    with federation.client() as client:
        cluster = {"metadata": {"name": "broken"}, "spec": {"server": "http://[::1"}}
        body = _status(client.post("/apis/federation.io/v1alpha1/clusters", json=cluster), 422)
        assert body["details"]["causes"][0]["field"] == "spec.server"
        _status(client.get("/apis/federation.io/v1alpha1/clusters/broken"), 404)
