"""The federation's controllers in a test: registering simulated clusters, running the controllers,
reading what members hold, waiting for it.

Members are simulated clusters (``federation.sim.Simulator``) reached over HTTPS through the official
client, exactly as the controllers reach GKE; nothing is mocked. Clusters are registered as a user
registers them: a credentials Secret in ``federation-system`` and a Cluster naming it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import REGISTRY

from federation.apimachinery import (
    EVENTS,
    NAMESPACES,
    REPLICASETS,
    SECRETS,
    AlreadyExists,
    Conflict,
    KubeContext,
    NotFound,
    Obj,
    WriteOptions,
)
from federation.apis import CLUSTERS, REGION_LABEL, SYSTEM_NAMESPACE
from federation.controllers import ControllerManager
from federation.settings import ControllerSettings, TrafficSettings
from federation.sim import Simulator

T = TypeVar("T")


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def cluster_objects(
    name: str, context: KubeContext, *, labels: dict[str, str] | None = None
) -> tuple[Obj, Obj]:
    """The credentials Secret and the Cluster that register one member."""
    data = {"token": b64(context.token or "")}
    if context.ca_pem:
        data["ca.crt"] = b64(context.ca_pem)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-credentials", "namespace": SYSTEM_NAMESPACE},
        "data": data,
    }
    cluster = {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name, "labels": {REGION_LABEL: name, **(labels or {})}},
        "spec": {"server": context.server, "secretRef": {"name": f"{name}-credentials"}},
    }
    return secret, cluster


async def register(
    manager: ControllerManager, sim: Simulator, *, labels: dict[str, dict[str, str]] | None = None
) -> None:
    """Register every simulated cluster of ``sim`` with the federation."""
    registry = manager.registry
    for namespace in ("default", SYSTEM_NAMESPACE):  # as the API server makes them at its start
        with contextlib.suppress(AlreadyExists):
            await registry.create(NAMESPACES, "", {"metadata": {"name": namespace}}, WriteOptions())
    for name in sim.names:
        secret, cluster = cluster_objects(
            name, sim.cluster(name).kube_context(), labels=(labels or {}).get(name)
        )
        await registry.create(SECRETS, SYSTEM_NAMESPACE, secret, WriteOptions())
        await registry.create(CLUSTERS, "", cluster, WriteOptions())


async def all_ready(manager: ControllerManager, names: list[str], *, within: float = 20.0) -> None:
    """Until the health controller has found every named cluster Ready."""

    async def check() -> bool:
        return all((seat := manager.fleet.get(n)) is not None and seat.ready for n in names)

    await eventually(check, within=within, what=f"clusters {names} Ready")


@contextlib.asynccontextmanager
async def running(manager: ControllerManager) -> AsyncIterator[ControllerManager]:
    task = asyncio.create_task(manager.run())
    started = asyncio.create_task(manager.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED, timeout=30)
    if task.done():
        task.result()
    try:
        yield manager
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def controllers_over(
    storage: Any,
    sim: Simulator,
    *,
    settings: ControllerSettings | None = None,
    traffic: TrafficSettings | None = None,
    work_dir: Any = None,
) -> AsyncIterator[ControllerManager]:
    """The controllers over ``storage`` with every cluster of ``sim`` registered and Ready."""
    manager = ControllerManager(
        storage, settings=settings or fast_settings(), traffic=traffic, work_dir=work_dir
    )
    await register(manager, sim)
    async with running(manager):
        await all_ready(manager, sim.names)
        yield manager


def fast_settings(**overrides: Any) -> ControllerSettings:
    """The defaults, but events kept and resync rarely, so a test sees its own doing."""
    values: dict[str, Any] = {"controller_metrics_port": 0, "unschedulable_grace": 2.0}
    values.update(overrides)
    return ControllerSettings(**values)


async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float = 20.0, interval: float = 0.1, what: str = ""
) -> T:
    """Await ``check`` until it returns something truthy, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    last: T = await check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what or check}: last {last!r}")
        await asyncio.sleep(interval)
        last = await check()
    return last


def member_replicas(sim: Simulator, namespace: str, name: str) -> dict[str, int]:
    """spec.replicas of the ReplicaSet in each simulated cluster that has one (read in the member)."""
    found: dict[str, int] = {}
    for cluster in sim.names:
        storage = sim.cluster(cluster).storage
        try:
            rs = sim.call(storage.get(REPLICASETS, namespace, name))
        except NotFound:
            continue
        found[cluster] = int(rs["spec"]["replicas"])
    return found


def member_ready(sim: Simulator, namespace: str, name: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for cluster in sim.names:
        try:
            rs = sim.call(sim.cluster(cluster).storage.get(REPLICASETS, namespace, name))
        except NotFound:
            continue
        found[cluster] = int((rs.get("status") or {}).get("readyReplicas") or 0)
    return found


def member_get(sim: Simulator, cluster: str, rt: Any, namespace: str, name: str) -> Obj | None:
    try:
        return sim.call(sim.cluster(cluster).storage.get(rt, namespace, name))
    except NotFound:
        return None


def sample(name: str, **labels: str) -> float:
    """A metric's value in this process's Prometheus registry (0 when never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def events_about(manager: ControllerManager, namespace: str, name: str, *, reason: str) -> list[Obj]:
    """The federation's Events of ``reason`` about the object ``name`` (Events of a cluster-scoped
    object are in ``default``)."""
    page = await manager.storage.list(EVENTS, namespace)
    return [
        e
        for e in page.items
        if (e.get("involvedObject") or {}).get("name") == name and e.get("reason") == reason
    ]


async def change(
    manager: ControllerManager, rt: Any, namespace: str, name: str, mutate: Callable[[Obj], None]
) -> Obj:
    """Read, change and update a federated object as a user's client does: again on a 409 Conflict
    (the controllers write its status and finalizers meanwhile)."""
    for _ in range(10):
        obj = await manager.registry.get(rt, namespace, name)
        mutate(obj)
        try:
            return (await manager.registry.update(rt, namespace, name, obj, WriteOptions())).object
        except Conflict:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{name}: still conflicting after 10 attempts")
