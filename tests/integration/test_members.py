"""The federation's client of members against simulated clusters over HTTPS, through the official client.

What a controller relies on: credentials from a Cluster's Secret, CRUD with Kubernetes errors as our
own types, probes that answer within their timeout whatever the member does, one pooled connection
reused, a black-holed member that delays nobody else, and an Informer that follows a member's
ReplicaSets through outages.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psutil
import pytest
from urllib3.exceptions import InsecureRequestWarning

from federation.apimachinery import (
    NAMESPACES,
    REPLICASETS,
    SECRETS,
    AlreadyExists,
    Conflict,
    Gone,
    Informer,
    Invalid,
    NotFound,
    Obj,
    Timeout,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    generate_bundle,
    read_kubeconfig,
)
from federation.apis import MANAGED_BY_LABEL
from federation.members import (
    Credentials,
    Member,
    MemberClient,
    MemberTimeout,
    MemberUnreachable,
    Timeouts,
    credentials_from_secret,
)
from federation.sim import ClusterSpec, Simulator

SICK, WELL = "asia-east1", "europe-west1"
FAST = Timeouts(connect=1.0, read=0.5)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    kubeconfig = tmp_path_factory.mktemp("members") / "sim.kubeconfig"
    specs = [
        ClusterSpec(SICK, nodes=2, pods_per_node=10, start_delay=0.05),
        ClusterSpec(WELL, nodes=3, pods_per_node=5, start_delay=0.05, watch_window=20),
    ]
    with Simulator(specs, kubeconfig=kubeconfig) as running:
        yield running


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def cluster_and_secret(kubeconfig: Path, name: str, **extra: str | bytes) -> tuple[Obj, Obj]:
    """The Cluster and its Secret as the federation stores them, from the simulator's kubeconfig."""
    ctx = read_kubeconfig(kubeconfig).context(name)
    assert ctx.token
    assert ctx.ca_pem
    data = {"token": ctx.token, "ca.crt": ctx.ca_pem, **extra}
    cluster = {
        "metadata": {"name": name},
        "spec": {"server": ctx.server, "secretRef": {"name": f"{name}-creds"}},
    }
    secret = {"metadata": {"name": f"{name}-creds"}, "data": {k: b64(v) for k, v in data.items()}}
    return cluster, secret


def credentials(sim: Simulator, name: str) -> Credentials:
    return credentials_from_secret(*cluster_and_secret(sim.kubeconfig, name))


@pytest.fixture
def sick(sim: Simulator) -> Iterator[MemberClient]:
    made = MemberClient(SICK, credentials(sim, SICK), timeouts=FAST)
    try:
        yield made
    finally:
        sim.heal(SICK)
        made.close()


@pytest.fixture
def well(sim: Simulator) -> Iterator[MemberClient]:
    made = MemberClient(WELL, credentials(sim, WELL), timeouts=FAST)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def ns(sick: MemberClient) -> Iterator[str]:
    name = f"m-{uuid.uuid4().hex[:6]}"
    sick.create(NAMESPACES, "", {"metadata": {"name": name}})
    yield name
    sick.delete(NAMESPACES, "", name)


def replicaset(name: str, replicas: int = 1, **labels: str) -> Obj:
    return {
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: "federation", **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }


# ---------------------------------------------------------------------------- credentials, facts


def test_a_secret_with_token_and_ca_reaches_the_member(sim: Simulator, sick: MemberClient) -> None:
    probe = sick.probe(timeout=2)
    assert probe.ok, probe
    assert probe.reason == "Ready"
    assert sick.version() == "v1.32.4-sim"
    capacity = sick.capacity()
    assert (capacity.allocatable_pods, capacity.schedulable_nodes, capacity.nodes) == (20, 2, 2)
    assert capacity.regions == (SICK,)
    assert (credentials(sim, SICK).token or "-") not in repr(sick)


def test_insecure_skip_verify_reaches_the_member_without_a_ca(sim: Simulator) -> None:
    cluster, secret = cluster_and_secret(sim.kubeconfig, WELL, **{"insecure-skip-tls-verify": "true"})
    del secret["data"]["ca.crt"]
    made = MemberClient(WELL, credentials_from_secret(cluster, secret), timeouts=FAST)
    try:
        with pytest.warns(InsecureRequestWarning):  # urllib3 says so, as kubectl does
            assert made.version() == "v1.32.4-sim"
    finally:
        made.close()


def test_a_client_certificate_is_kept_in_private_files_until_close(sim: Simulator) -> None:
    good = credentials(sim, WELL)
    bundle = generate_bundle()
    with_cert = Credentials(
        server=good.server,
        token=good.token,
        ca_pem=good.ca_pem,
        client_cert_pem=bundle.cert_pem.decode(),
        client_key_pem=bundle.key_pem.decode(),
    )
    made = MemberClient(WELL, with_cert, timeouts=FAST)
    key_file = Path(made._api.configuration.key_file)
    try:
        assert made.version() == "v1.32.4-sim"  # the certificate is offered; the token authenticates
        assert key_file.read_text() == bundle.key_pem.decode()
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.parent.stat().st_mode & 0o777 == 0o700
    finally:
        made.close()
    assert not key_file.parent.exists()


def test_a_server_not_signed_by_the_ca_is_a_tls_error(sim: Simulator) -> None:
    good = credentials(sim, WELL)
    stranger = Credentials(server=good.server, token=good.token, ca_pem=generate_bundle().ca_pem.decode())
    made = MemberClient(WELL, stranger, timeouts=FAST)
    try:
        probe = made.probe(timeout=2)
        assert (probe.ok, probe.reason) == (False, "TLSError")
        assert "certificate verify failed" in probe.message
        with pytest.raises(MemberUnreachable) as caught:
            made.get(NAMESPACES, "", "default")
        assert caught.value.failure == "TLSError"
        assert str(caught.value).startswith(f"cluster {WELL}: TLS handshake failed")
    finally:
        made.close()


def test_a_wrong_token_is_unauthorized(sim: Simulator) -> None:
    good = credentials(sim, WELL)
    made = MemberClient(WELL, Credentials(server=good.server, token="wrong", ca_pem=good.ca_pem))
    try:
        with pytest.raises(Unauthorized) as caught:
            made.get(NAMESPACES, "", "default")
        assert str(caught.value).startswith(f"cluster {WELL}: ")
        assert "wrong" not in str(caught.value)
    finally:
        made.close()


# ---------------------------------------------------------------------------- objects and errors


def test_crud_of_namespaces_secrets_and_replicasets_with_errors_translated(
    sick: MemberClient, ns: str
) -> None:
    with pytest.raises(AlreadyExists) as exists:
        sick.create(NAMESPACES, "", {"metadata": {"name": ns}})
    assert str(exists.value) == f'cluster {SICK}: namespaces "{ns}" already exists'

    made = sick.create(SECRETS, ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert (made["kind"], made["data"]) == ("Secret", {"k": b64("v")})
    read = sick.get(SECRETS, ns, "s")
    assert read["metadata"]["uid"] == made["metadata"]["uid"]
    changed = sick.replace(SECRETS, ns, "s", {**read, "data": {"k": b64("w")}})
    assert int(changed["metadata"]["resourceVersion"]) > int(read["metadata"]["resourceVersion"])
    with pytest.raises(Conflict) as stale:  # read's resourceVersion is stale now
        sick.replace(SECRETS, ns, "s", {**read, "data": {"k": b64("x")}})
    assert "the object has been modified" in str(stale.value)
    with pytest.raises(Conflict):  # a uid precondition that does not hold
        sick.delete(SECRETS, ns, "s", uid=str(uuid.uuid4()))
    sick.delete(SECRETS, ns, "s", uid=made["metadata"]["uid"])
    with pytest.raises(NotFound) as missing:
        sick.get(SECRETS, ns, "s")
    assert str(missing.value) == f'cluster {SICK}: secrets "s" not found'
    with pytest.raises(NotFound):
        sick.delete(SECRETS, ns, "s")

    sick.create(REPLICASETS, ns, replicaset("web", tier="front"))
    sick.create(REPLICASETS, ns, replicaset("api", tier="back"))
    listing = sick.list(REPLICASETS, ns, label_selector="tier=front")
    assert [rs["metadata"]["name"] for rs in listing.items] == ["web"]
    assert listing.items[0]["kind"] == "ReplicaSet"
    assert listing.resource_version >= int(listing.items[0]["metadata"]["resourceVersion"])
    by_name = sick.list(REPLICASETS, None, field_selector="metadata.name=api")
    assert [(rs["metadata"]["namespace"], rs["metadata"]["name"]) for rs in by_name.items] == [(ns, "api")]

    bad = replicaset("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(Invalid) as invalid:
        sick.create(REPLICASETS, ns, bad)
    assert [cause.field for cause in invalid.value.causes] == ["spec.template.metadata.labels"]
    assert str(invalid.value).startswith(f"cluster {SICK}: ")


def test_a_watch_from_a_version_out_of_the_window_is_gone(well: MemberClient) -> None:
    ns = f"g-{uuid.uuid4().hex[:6]}"
    start = well.create(NAMESPACES, "", {"metadata": {"name": ns}})
    try:
        for i in range(25):  # the window holds 20 changes
            well.create(SECRETS, ns, {"metadata": {"name": f"s{i}"}})
        with pytest.raises(Gone):
            list(well.watch(SECRETS, ns, since=int(start["metadata"]["resourceVersion"])))
    finally:
        well.delete(NAMESPACES, "", ns)


# ---------------------------------------------------------------------------- outages


def test_probe_answers_within_its_timeout_whatever_the_member_does(
    sim: Simulator, sick: MemberClient
) -> None:
    sim.fail(SICK, "down")
    down = sick.probe(timeout=1.0)
    assert (down.ok, down.reason, down.message) == (
        False,
        "ConnectionRefused",
        f"cluster {SICK}: connection refused",
    )
    assert down.seconds < 0.5

    sim.fail(SICK, "blackhole")
    held = sick.probe(timeout=0.8)
    assert (held.ok, held.reason) == (False, "Timeout")
    assert 0.7 <= held.seconds < 1.3

    sim.fail(SICK, "error", status=500)
    sick_answer = sick.probe(timeout=1.0)
    assert (sick_answer.ok, sick_answer.reason) == (False, "Unhealthy")
    assert sick_answer.message.startswith(f"cluster {SICK}: /readyz answered 500: ")

    sim.heal(SICK)
    assert sick.probe(timeout=1.0).ok


def test_calls_to_an_unreachable_member_raise_member_unreachable(sim: Simulator, sick: MemberClient) -> None:
    sim.fail(SICK, "down")
    with pytest.raises(MemberUnreachable) as refused:
        sick.get(NAMESPACES, "", "default")
    assert isinstance(refused.value, Unavailable)
    assert not isinstance(refused.value, Timeout)
    assert (refused.value.failure, str(refused.value)) == (
        "ConnectionRefused",
        f"cluster {SICK}: connection refused",
    )

    sim.fail(SICK, "blackhole")
    started = time.monotonic()
    with pytest.raises(MemberTimeout) as held:
        sick.list(NAMESPACES, None)
    assert time.monotonic() - started < 1.5
    assert isinstance(held.value, Timeout)
    assert isinstance(held.value, MemberUnreachable)
    assert str(held.value) == f"cluster {SICK}: no answer within 0.5s"

    sim.fail(SICK, "error", status=429, retry_after=3)
    with pytest.raises(TooManyRequests) as busy:
        sick.get(NAMESPACES, "", "default")
    assert busy.value.retry_after == 3
    assert not isinstance(busy.value, MemberUnreachable)  # the member answered: it said no

    sim.heal(SICK)
    assert sick.get(NAMESPACES, "", "default")["metadata"]["name"] == "default"


def _client_sockets_to(port: int) -> set[int]:
    """Local ports of every TCP connection (any state, TIME_WAIT included) to ``port``."""
    return {c.laddr.port for c in psutil.net_connections("tcp") if c.raddr and c.raddr.port == port}


def test_connections_are_reused(sim: Simulator, well: MemberClient) -> None:
    port = sim.cluster(WELL).port
    before = _client_sockets_to(port)
    started = time.monotonic()
    for _ in range(200):
        well.get(NAMESPACES, "", "default")
    took = time.monotonic() - started
    opened = _client_sockets_to(port) - before
    assert len(opened) <= 2, f"{len(opened)} connections for 200 sequential gets"
    assert took < 5, took


# ---------------------------------------------------------------------------- the async face


@pytest.mark.anyio
async def test_a_blackholed_member_delays_no_other_member(sim: Simulator) -> None:
    sick = Member(
        MemberClient(SICK, credentials(sim, SICK), timeouts=Timeouts(connect=1, read=2)), concurrency=2
    )
    well = Member(MemberClient(WELL, credentials(sim, WELL), timeouts=FAST), concurrency=2)
    try:
        await well.get(NAMESPACES, "", "default")  # warm connections, as a running controller has
        await sick.get(NAMESPACES, "", "default")
        sim.fail(SICK, "blackhole")
        started = time.monotonic()
        stuck = [asyncio.ensure_future(sick.get(NAMESPACES, "", "default")) for _ in range(3)]
        answered = await well.get(NAMESPACES, "", "default")
        assert answered["metadata"]["name"] == "default"
        assert time.monotonic() - started < 0.5
        probe = await sick.probe(timeout=0.5)  # its own thread: not queued behind the stuck calls
        assert (probe.ok, probe.reason) == (False, "Timeout")
        assert time.monotonic() - started < 1.2
        assert not any(call.done() for call in stuck)
        results = await asyncio.gather(*stuck, return_exceptions=True)
        assert all(isinstance(r, MemberTimeout) for r in results), results
    finally:
        sim.heal(SICK)
        await sick.close()
        await well.close()


async def _until_async(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def _until(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.mark.anyio
async def test_an_informer_follows_a_members_replicasets_through_an_outage(sim: Simulator) -> None:
    member = Member(MemberClient(SICK, credentials(sim, SICK), timeouts=FAST))
    ns = f"i-{uuid.uuid4().hex[:6]}"
    await member.create(NAMESPACES, "", {"metadata": {"name": ns}})
    informer = Informer(member.source(REPLICASETS, label_selector=f"{MANAGED_BY_LABEL}=federation"))
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.wait_synced(), 10)
        await member.create(REPLICASETS, ns, replicaset("web"))
        unmanaged = replicaset("other")
        del unmanaged["metadata"]["labels"][MANAGED_BY_LABEL]
        await member.create(REPLICASETS, ns, unmanaged)
        await _until(lambda: informer.get(ns, "web") is not None)
        current = await member.get(REPLICASETS, ns, "web")
        current["spec"]["replicas"] = 2
        await member.replace(REPLICASETS, ns, "web", current)
        await _until(lambda: (informer.get(ns, "web") or {}).get("spec", {}).get("replicas") == 2)
        assert informer.get(ns, "other") is None

        sim.fail(SICK, "down")
        await asyncio.sleep(0.3)  # the watch breaks; the informer backs off and retries
        sim.heal(SICK)
        await member.create(REPLICASETS, ns, replicaset("api"))
        await member.delete(REPLICASETS, ns, "web")

        def versions(items: list[Obj]) -> dict[tuple[str, str], str]:
            return {
                (o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
                for o in items
            }

        async def caught_up() -> bool:
            fresh = await member.list(REPLICASETS, None, label_selector=f"{MANAGED_BY_LABEL}=federation")
            return versions(informer.list()) == versions(fresh.items)

        await _until_async(caught_up)
        assert informer.relists >= 2  # the outage cost one relist
        assert informer.keys() == [(ns, "api")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sim.heal(SICK)
        await member.delete(NAMESPACES, "", ns)
        await member.close()
    await _until(lambda: not [t for t in _threads() if t.startswith(f"member-{SICK}-watch")], within=3)


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate()]
