"""Whose rule is it: Kubernetes' own rules hold in every server, the federation's only in its API.

The shared machinery keeps what a Kubernetes cluster has (``default``, ``kube-system`` and
``kube-public`` may not be deleted, by anyone). The federation's rule about its credentials
namespace (``federation-system``: admins only, hidden from others, never deleted) is a
:class:`~federation.apimachinery.Policy` that the federation API server passes to ``build_app``.
So a simulated member cluster, reached through the official client as the federation reaches it,
treats a namespace named ``federation-system`` as any other; and the same server over memory,
given the federation's policy, applies the rule for each role.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from federation.api.policy import SystemNamespacePolicy
from federation.apimachinery import (
    CORE_KINDS,
    KUBERNETES_RULES_ONLY,
    MemoryStorage,
    Policy,
    Principal,
    SchemaSet,
    Scheme,
    build_app,
)
from federation.apis import SYSTEM_NAMESPACE
from federation.sim import ClusterSpec, Simulator
from tests.sim_support import api_client, wait_until

CLUSTER = "policy-check"
KUBERNETES_OWN = ("default", "kube-system", "kube-public")
Served = tuple[Policy, dict[str, httpx.AsyncClient]]
"""A server's policy and a client per role."""
TOKENS = {
    "admin-token": Principal("root", "admin"),
    "editor-token": Principal("ed", "editor"),
    "viewer-token": Principal("vi", "viewer"),
}


# ------------------------------------------------------------ a simulated member cluster


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.ApiClient]:
    kubeconfig = tmp_path_factory.mktemp("sim") / "sim.kubeconfig"
    with (
        Simulator([ClusterSpec(CLUSTER, nodes=1, pods_per_node=2, start_delay=0.05)], kubeconfig=kubeconfig),
        api_client(kubeconfig, CLUSTER) as api,
    ):
        yield api


def _gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


def test_a_member_clusters_admin_creates_and_deletes_a_namespace_named_federation_system(
    member: client.ApiClient,
) -> None:
    core = client.CoreV1Api(member)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=SYSTEM_NAMESPACE)))
    core.create_namespaced_secret(
        SYSTEM_NAMESPACE, client.V1Secret(metadata=client.V1ObjectMeta(name="anything"))
    )
    listed = core.list_secret_for_all_namespaces(field_selector=f"metadata.namespace={SYSTEM_NAMESPACE}")
    assert [s.metadata.name for s in listed.items] == ["anything"]
    core.delete_namespace(SYSTEM_NAMESPACE)
    wait_until(lambda: _gone(core, SYSTEM_NAMESPACE), within=20, what="federation-system to be deleted")
    assert (
        core.list_secret_for_all_namespaces(field_selector=f"metadata.namespace={SYSTEM_NAMESPACE}").items
        == []
    )


@pytest.mark.parametrize("name", KUBERNETES_OWN)
def test_a_member_cluster_keeps_kubernetes_own_namespaces(member: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(member)
    with pytest.raises(ApiException) as caught:
        core.delete_namespace(name)
    assert caught.value.status == 403
    assert "this namespace may not be deleted" in caught.value.body
    assert core.read_namespace(name).status.phase == "Active"


# ------------------------------------------------------------ one server, with and without the policy


def _app(policy: Policy) -> FastAPI:
    async def authenticate(token: str | None) -> Principal | None:
        return TOKENS.get(token or "")

    return build_app(
        scheme=Scheme(CORE_KINDS),
        storage=MemoryStorage(),
        schemas=SchemaSet(),
        authenticator=authenticate,
        version={"major": "1", "minor": "32"},
        title="policy test",
        policy=policy,
    )


@pytest.fixture(params=[SystemNamespacePolicy(), KUBERNETES_RULES_ONLY], ids=["federation", "member"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    policy: Policy = request.param
    app = _app(policy)
    transport = httpx.ASGITransport(app=app)
    clients: dict[str, httpx.AsyncClient] = {
        principal.role: httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {token}"}
        )
        for token, principal in TOKENS.items()
    }
    async with app.router.lifespan_context(app):
        admin = clients["admin"]
        for name in ("default", SYSTEM_NAMESPACE, "apps"):
            made = await admin.post("/api/v1/namespaces", json={"metadata": {"name": name}})
            assert made.status_code == 201, made.text
        for namespace in (SYSTEM_NAMESPACE, "apps"):
            secret = {"metadata": {"name": f"in-{namespace}"}, "data": {"k": "dg=="}}
            made = await admin.post(f"/api/v1/namespaces/{namespace}/secrets", json=secret)
            assert made.status_code == 201, made.text
        yield policy, clients
    for c in clients.values():
        await c.aclose()


def _names(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["metadata"]["name"] for item in response.json()["items"]}


@pytest.mark.anyio
async def test_the_system_namespace_is_the_federations_rule_only(
    server: Served,
) -> None:
    policy, clients = server
    federation = isinstance(policy, SystemNamespacePolicy)
    admin, editor, viewer = clients["admin"], clients["editor"], clients["viewer"]
    everything = {f"in-{SYSTEM_NAMESPACE}", "in-apps"}
    assert _names(await admin.get("/api/v1/secrets")) == everything
    for who in (editor, viewer):
        listed = _names(await who.get("/api/v1/secrets"))
        assert listed == ({"in-apps"} if federation else everything)
        named = await who.get(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets")
        assert named.status_code == (403 if federation else 200), named.text
        namespace = await who.get(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}")
        assert namespace.status_code == (403 if federation else 200), namespace.text
    written = await editor.post(
        f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets",
        json={"metadata": {"name": f"e-{uuid.uuid4().hex[:6]}"}},
    )
    assert written.status_code == (403 if federation else 201), written.text
    if federation:
        assert "requires role admin" in written.json()["message"]
    # Events of the system namespace stay readable (they say what the federation did).
    assert (await viewer.get(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/events")).status_code == 200


@pytest.mark.anyio
async def test_who_may_delete_the_system_namespace(
    server: Served,
) -> None:
    policy, clients = server
    admin, editor = clients["admin"], clients["editor"]
    refused = await admin.delete("/api/v1/namespaces/default")  # Kubernetes' own rule, in both
    assert refused.status_code == 403, refused.text
    by_selector = await editor.delete(
        "/api/v1/namespaces",
        params={"labelSelector": f"kubernetes.io/metadata.name={SYSTEM_NAMESPACE}", "dryRun": "All"},
    )
    deleted = await admin.delete(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}")
    if isinstance(policy, SystemNamespacePolicy):
        assert by_selector.status_code == 403, by_selector.text
        assert deleted.status_code == 403, deleted.text
        assert deleted.json()["message"] == (
            f'namespaces "{SYSTEM_NAMESPACE}" is forbidden: this namespace may not be deleted'
        )
        current: dict[str, Any] = (await admin.get(f"/api/v1/namespaces/{SYSTEM_NAMESPACE}")).json()
        assert "deletionTimestamp" not in current["metadata"]
    else:
        assert by_selector.status_code == 200, by_selector.text
        assert deleted.status_code == 202, deleted.text
        assert deleted.json()["status"]["phase"] == "Terminating"
