"""Kubernetes semantics, authorization and secrecy of the API, where a review found bugs.

Each test shows one behaviour that was wrong and is now as Kubernetes has it. Server tests run
against a real ``fedctl up`` over Postgres; registry tests run the generic registry over
``MemoryStorage`` (a storage wrapper injects a concurrent write where a race is the point).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from federation.apimachinery import NAMESPACES, ApiError, Registry, SchemaSet, Scheme, WriteOptions
from federation.apimachinery.kinds import CORE_KINDS, REPLICASETS, SECRETS
from federation.apimachinery.memory import MemoryStorage
from federation.apimachinery.resources import Obj, ResourceType
from tests.servers import FEDCTL, RunningFederation, start_federation
from tests.sim_support import kept_after_idle

NS = "review"
SYSTEM = "federation-system"
CREDENTIAL = "s3cr3t-member-token"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[RunningFederation]:
    running = start_federation(
        tmp_path_factory.mktemp("fed"),
        database_url=database_url,
        extra_env={"FEDERATION_WATCH_WINDOW": "200"},
    )
    running.database_url = database_url  # type: ignore[attr-defined]
    admin = running.client(running.admin_token)
    assert admin.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).status_code == 201
    admin.close()
    yield running
    running.stop()


def _token(federation: RunningFederation, role: str) -> str:
    return subprocess.run(
        [FEDCTL, "token", "create", "--role", role, "--data-dir", str(federation.data_dir)],
        env={**os.environ, "FEDERATION_DATABASE_URL": federation.database_url},  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def admin(federation: RunningFederation) -> Iterator[httpx.Client]:
    with federation.client(federation.admin_token) as c:
        yield c


@pytest.fixture(scope="module")
def editor(federation: RunningFederation) -> Iterator[httpx.Client]:
    with federation.client(_token(federation, "editor")) as c:
        yield c


@pytest.fixture(scope="module")
def viewer(federation: RunningFederation) -> Iterator[httpx.Client]:
    with federation.client(_token(federation, "viewer")) as c:
        yield c


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(name: str, value: str = CREDENTIAL, **extra: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"token": _b64(value)},
    } | (extra)


# -------------------------------------------------------------- authorization: federation-system


def test_an_idle_connection_is_kept_as_kubernetes_keeps_it(federation: RunningFederation) -> None:
    """kubectl and client-go pool connections for 90 s, as kube-apiserver keeps them; uvicorn's
    default closed them after 5 s, so a client's next request could meet a closing connection."""
    context = ssl.create_default_context(cafile=str(federation.ca_file))
    kept = kept_after_idle(federation.url, context, f"Bearer {federation.admin_token}", idle=6)
    assert kept, "the server closed an idle connection within 6 s"


def test_admin_only_namespace_is_really_admin_only_for_named_paths(
    admin: httpx.Client, editor: httpx.Client, viewer: httpx.Client
) -> None:
    """Sanity (passes): the namespaced paths of federation-system are refused to non-admins."""
    created = admin.post(f"/api/v1/namespaces/{SYSTEM}/secrets", json=_secret("member-a-credentials"))
    assert created.status_code in (201, 409), created.text
    for who in (editor, viewer):
        assert who.get(f"/api/v1/namespaces/{SYSTEM}/secrets").status_code == 403
        assert who.get(f"/api/v1/namespaces/{SYSTEM}/secrets/member-a-credentials").status_code == 403


def test_editor_cannot_read_federation_system_secrets_through_all_namespaces_list(
    admin: httpx.Client, editor: httpx.Client
) -> None:
    created = admin.post(f"/api/v1/namespaces/{SYSTEM}/secrets", json=_secret("member-b-credentials"))
    assert created.status_code in (201, 409), created.text
    listed = editor.get("/api/v1/secrets")  # kubectl get secrets -A -o yaml
    if listed.status_code == 403:
        return  # refusing the cluster-wide list outright is an acceptable fix
    assert listed.status_code == 200, listed.text
    leaked = [s for s in listed.json()["items"] if s["metadata"]["namespace"] == SYSTEM]
    assert leaked == [], f"editor sees {len(leaked)} federation-system secrets, e.g. {leaked[:1]}"


def test_editor_cannot_delete_federation_system_through_deletecollection(editor: httpx.Client) -> None:
    # dryRun=All so that the bug, while it exists, does not really delete the namespace.
    gone = editor.delete(
        "/api/v1/namespaces",
        params={"labelSelector": f"kubernetes.io/metadata.name={SYSTEM}", "dryRun": "All"},
    )
    assert gone.status_code == 403, f"{gone.status_code}: {gone.text}"


def test_nobody_deletes_federation_system_nor_default(admin: httpx.Client) -> None:
    """The federation's own rule (its policy) and Kubernetes' (the machinery's), for admins too."""
    for name in (SYSTEM, "default"):
        for params in ({"dryRun": "All"}, {}):
            refused = admin.delete(f"/api/v1/namespaces/{name}", params=params)
            assert refused.status_code == 403, refused.text
            message = refused.json()["message"]
            assert message == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        current = admin.get(f"/api/v1/namespaces/{name}")
        assert current.status_code == 200
        assert "deletionTimestamp" not in current.json()["metadata"]


# ------------------------------------------------------------------------ secrecy: viewer reads


def test_viewer_never_sees_secret_data_in_last_applied_annotation(
    admin: httpx.Client, viewer: httpx.Client
) -> None:
    # What `kubectl apply -f secret.yaml` (client-side apply) sends: the manifest itself, data
    # included, as an annotation.
    manifest = _secret("applied")
    body = _secret("applied")
    body["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(manifest)}
    created = admin.post(f"/api/v1/namespaces/{NS}/secrets", json=body)
    assert created.status_code == 201, created.text
    encoded = _b64(CREDENTIAL)

    got = viewer.get(f"/api/v1/namespaces/{NS}/secrets/applied")
    assert got.status_code == 200
    assert "data" not in got.json()
    table = viewer.get(
        f"/api/v1/namespaces/{NS}/secrets",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    listed = viewer.get(f"/api/v1/namespaces/{NS}/secrets")
    for response in (got, table, listed):
        assert encoded not in response.text, response.text[:400]
        assert CREDENTIAL not in response.text, response.text[:400]


# ------------------------------------------------------------------------------------- watches


def test_bookmarks_advance_past_changes_the_watcher_does_not_see(admin: httpx.Client) -> None:
    assert admin.post("/api/v1/namespaces", json={"metadata": {"name": "quiet"}}).status_code == 201
    start = int(admin.get("/api/v1/namespaces/quiet/secrets").json()["metadata"]["resourceVersion"])
    newest = start
    bookmarks: list[int] = []
    params = {
        "watch": "true",
        "resourceVersion": str(start),
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "8",
    }
    with admin.stream("GET", "/api/v1/namespaces/quiet/secrets", params=params, timeout=20) as stream:
        # Changes elsewhere after the watch started (this watcher is not shown them).
        for i in range(3):
            made = admin.post(f"/api/v1/namespaces/{NS}/secrets", json=_secret(f"noise-{i}"))
            assert made.status_code == 201
            newest = int(made.json()["metadata"]["resourceVersion"])
        for line in stream.iter_lines():
            event = json.loads(line)
            if event["type"] == "BOOKMARK":
                bookmarks.append(int(event["object"]["metadata"]["resourceVersion"]))
                break
    assert bookmarks, "no bookmark within the timeout"
    # Kubernetes' bookmark carries the watch cache's current version, so a resume skips what the
    # watcher was never going to see instead of falling out of the window.
    assert bookmarks[0] >= newest, f"bookmark {bookmarks[0]} did not advance past {newest} (start {start})"


def test_watch_with_timeout_seconds_zero_stays_open(admin: httpx.Client) -> None:
    started = time.monotonic()
    params = {"watch": "true", "timeoutSeconds": "0", "sendInitialEvents": "false"}
    try:
        with admin.stream("GET", f"/api/v1/namespaces/{NS}/events", params=params, timeout=3) as stream:
            for _ in stream.iter_lines():
                pass
    except httpx.ReadTimeout:
        return  # still open after 3 s: as Kubernetes
    pytest.fail(f"the watch ended after {time.monotonic() - started:.2f}s")


# ---------------------------------------------------------------------------- authentication


def test_unknown_group_without_token_is_401(federation: RunningFederation) -> None:
    with federation.client() as anonymous:
        assert anonymous.get("/apis/apps").status_code == 401
        assert anonymous.get("/apis/no-such.example.com").status_code == 401
        assert anonymous.get("/openapi/v3/apis/no-such.example.com/v1").status_code == 401


# --------------------------------------------------------------------- namespace protection


def test_default_namespace_may_not_be_deleted(editor: httpx.Client) -> None:
    gone = editor.delete("/api/v1/namespaces/default", params={"dryRun": "All"})
    assert gone.status_code == 403, f"{gone.status_code}: {gone.text}"


# ---------------------------------------------------------------------- registry-level tests


class RacingStorage(MemoryStorage):
    """A memory storage where, ``races`` times, another client writes the object just after a
    reader fetched it (so the reader's write has a stale precondition)."""

    def __init__(self) -> None:
        super().__init__()
        self.races = 0

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        found = await super().get(rt, namespace, name)
        if self.races and rt is not NAMESPACES:
            self.races -= 1
            other = await super().get(rt, namespace, name)
            other["metadata"].setdefault("annotations", {})["other-writer"] = str(self.races)
            await super().update(rt, other)
        return found


def _rs(name: str) -> Obj:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


async def _registry() -> tuple[Registry, RacingStorage]:
    storage = RacingStorage()
    registry = Registry(Scheme(CORE_KINDS), storage, SchemaSet())
    await registry.create(NAMESPACES, "", {"metadata": {"name": "a"}}, WriteOptions())
    return registry, storage


@pytest.mark.anyio
async def test_unconditional_put_retries_a_concurrent_write() -> None:
    """Sanity (passes): a PUT without resourceVersion retries on a lost race, as documented."""
    registry, storage = await _registry()
    await registry.create(SECRETS, "a", _secret("s"), WriteOptions())
    storage.races = 1
    out = await registry.update(SECRETS, "a", "s", _secret("s", "new"), WriteOptions())
    assert out.object["data"]["token"] == _b64("new")


@pytest.mark.anyio
async def test_patch_without_resource_version_retries_a_concurrent_write() -> None:
    registry, storage = await _registry()
    await registry.create(SECRETS, "a", _secret("s"), WriteOptions())
    storage.races = 1
    out = await registry.patch(
        SECRETS, "a", "s", "merge", {"metadata": {"labels": {"x": "y"}}}, WriteOptions()
    )
    assert out.object["metadata"]["labels"] == {"x": "y"}


@pytest.mark.anyio
async def test_scale_patch_retries_a_concurrent_write() -> None:
    registry, storage = await _registry()
    await registry.create(REPLICASETS, "a", _rs("web"), WriteOptions())
    storage.races = 1
    out = await registry.patch(
        REPLICASETS, "a", "web", "merge", {"spec": {"replicas": 5}}, WriteOptions(), subresource="scale"
    )
    assert out.object["spec"]["replicas"] == 5


@pytest.mark.anyio
async def test_dry_run_create_of_an_existing_name_is_already_exists() -> None:
    registry, _ = await _registry()
    await registry.create(SECRETS, "a", _secret("s"), WriteOptions())
    with pytest.raises(ApiError) as raised:
        await registry.create(SECRETS, "a", _secret("s"), WriteOptions(dry_run=True))
    assert raised.value.code == 409


@pytest.mark.anyio
async def test_immutable_secret_cannot_be_made_mutable() -> None:
    registry, _ = await _registry()
    await registry.create(SECRETS, "a", _secret("im", immutable=True), WriteOptions())
    with pytest.raises(ApiError) as raised:
        await registry.patch(SECRETS, "a", "im", "merge", {"immutable": False}, WriteOptions())
    assert raised.value.code == 422


@pytest.mark.anyio
@pytest.mark.parametrize("change", [{"name": "renamed"}, {"namespace": "elsewhere"}])
async def test_patch_that_changes_name_or_namespace_is_refused(change: dict[str, str]) -> None:
    registry, _ = await _registry()
    await registry.create(SECRETS, "a", _secret("s"), WriteOptions())
    with pytest.raises(ApiError) as raised:
        await registry.patch(SECRETS, "a", "s", "merge", {"metadata": change}, WriteOptions())
    assert raised.value.code in (400, 422)


@pytest.mark.anyio
async def test_put_with_a_different_uid_is_refused() -> None:
    registry, _ = await _registry()
    await registry.create(SECRETS, "a", _secret("s"), WriteOptions())
    body = _secret("s", "new")
    body["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(ApiError) as raised:
        await registry.update(SECRETS, "a", "s", body, WriteOptions())
    assert raised.value.code in (409, 422)


@pytest.mark.anyio
async def test_put_with_a_malformed_resource_version_is_refused() -> None:
    registry, _ = await _registry()
    await registry.create(SECRETS, "a", _secret("s"), WriteOptions())
    body = _secret("s", "new")
    body["metadata"]["resourceVersion"] = "abc"
    with pytest.raises(ApiError) as raised:
        await registry.update(SECRETS, "a", "s", body, WriteOptions())
    assert raised.value.code in (400, 409, 422)


@pytest.mark.anyio
async def test_no_new_finalizers_once_deletion_started() -> None:
    registry, _ = await _registry()
    body = _secret("fin")
    body["metadata"]["finalizers"] = ["example.com/a"]
    await registry.create(SECRETS, "a", body, WriteOptions())
    marked = await registry.delete(SECRETS, "a", "fin")
    assert marked.object["metadata"].get("deletionTimestamp")
    with pytest.raises(ApiError) as raised:
        await registry.patch(
            SECRETS,
            "a",
            "fin",
            "merge",
            {"metadata": {"finalizers": ["example.com/a", "example.com/b"]}},
            WriteOptions(),
        )
    assert raised.value.code == 422
