"""Many simulated member clusters in one process: start them, break them, heal them, stop them.

:class:`SimulatorRuntime` runs N :class:`~federation.sim.cluster.SimulatedCluster` on the current event
loop, all behind one CA and one serving certificate (made in memory in milliseconds, so 100 clusters
start fast), and writes one kubeconfig with a context per cluster (context name = cluster name) plus a
``sim.federation.io/control`` extension that tells ``fedctl sim fail/heal/nodes`` where the simulator's
control API listens and which token it takes (:mod:`federation.sim.control`).

Three ways to run it:

* ``await SimulatorRuntime(...).start()`` on a loop you own (``fedctl sim up`` does this);
* :class:`Simulator`, for tests and scripts: the same in a background thread with its own loop, with a
  blocking API (``fail``, ``heal``, ``set_nodes``, ``stop``) and the kubeconfig path;
* :class:`SimulatorProcess`: ``python -m federation.sim`` as a child process, driven through the
  control API; it is ready when it prints :data:`READY_LINE`.

Guarantees: the kubeconfig is written (mode 0600) only once every cluster serves, and a file at that
path that the simulator did not write is never overwritten; stopping ends every cluster, port, task and
thread it started, and every wait here is bounded in time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from federation.apimachinery import (
    Kubeconfig,
    KubeconfigError,
    SchemaSet,
    generate_bundle,
    pace_collector,
    read_kubeconfig,
    write_kubeconfig,
)
from federation.sim.cluster import ClusterSpec, SimulatedCluster
from federation.sim.control import CONTROL_EXTENSION, ControlClient, ControlServer
from federation.sim.faults import Fault, FaultMode

READY_LINE = "simulator ready"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0

T = TypeVar("T")


class SimulatorError(RuntimeError):
    """The simulator cannot do what was asked (kubeconfig in the way, not running, ...)."""


class UnknownCluster(SimulatorError, LookupError):
    """No simulated cluster has that name."""


def cluster_specs(
    clusters: Iterable[str | ClusterSpec],
    *,
    nodes: int = 3,
    pods_per_node: int = 10,
    start_delay: float = 1.0,
) -> list[ClusterSpec]:
    """Specs from names (with the shared defaults) or ready specs; names must be unique DNS labels."""
    specs = [
        c
        if isinstance(c, ClusterSpec)
        else ClusterSpec(c, nodes=nodes, pods_per_node=pods_per_node, start_delay=start_delay)
        for c in clusters
    ]
    names = [s.name for s in specs]
    if not specs:
        raise SimulatorError("name at least one cluster")
    if len(set(names)) != len(names):
        raise SimulatorError("cluster names must be unique")
    for name in names:
        if (
            not name
            or len(name) > 40
            or not all(ch.isalnum() or ch == "-" for ch in name)
            or name != name.lower()
            or name[0] == "-"
            or name[-1] == "-"
        ):
            raise SimulatorError(
                f"cluster name {name!r} must be a lowercase DNS label of at most 40 characters"
            )
    return specs


def _check_kubeconfig_path(path: Path) -> None:
    if not path.exists():
        return
    try:
        existing = read_kubeconfig(path)
    except KubeconfigError as err:
        raise SimulatorError(
            f"{path} exists and is not a simulator kubeconfig ({err}); choose another path"
        ) from None
    if CONTROL_EXTENSION not in existing.extensions:
        raise SimulatorError(f"{path} exists and was not written by the simulator; choose another path")


class SimulatorRuntime:
    """The simulator on the running event loop."""

    def __init__(
        self,
        specs: Sequence[ClusterSpec],
        *,
        kubeconfig: Path,
        schemas: SchemaSet | None = None,
        first_index: int = 0,
    ) -> None:
        if first_index < 0:
            raise SimulatorError("the first cluster index cannot be negative")
        self.specs = list(specs)
        self.kubeconfig = kubeconfig
        self.first_index = first_index
        """The address plan index of the first cluster (:class:`~federation.sim.network.Topology`):
        processes that share a fleet give each other disjoint ranges of it, as one process would."""
        self._schemas = schemas or SchemaSet()
        self.clusters: dict[str, SimulatedCluster] = {}
        self.control: ControlServer | None = None
        self._lock = asyncio.Lock()

    def cluster(self, name: str) -> SimulatedCluster:
        found = self.clusters.get(name)
        if found is None:
            raise UnknownCluster(f"no simulated cluster named {name!r}; have {', '.join(self.clusters)}")
        return found

    async def start(self) -> None:
        _check_kubeconfig_path(self.kubeconfig)
        bundle = generate_bundle(common_name="federation-sim-ca")
        tls = bundle.server_context()
        try:
            for index, spec in enumerate(self.specs):
                cluster = SimulatedCluster(
                    spec,
                    index=self.first_index + index,
                    schemas=self._schemas,
                    tls=tls,
                    ca_pem=bundle.ca_pem,
                )
                self.clusters[spec.name] = cluster
                await cluster.start()
            self.control = ControlServer(self, tls=tls)
            await self.control.start()
            contexts = tuple(c.kube_context() for c in self.clusters.values())
            config = Kubeconfig(
                contexts,
                current_context=contexts[0].name,
                extensions={CONTROL_EXTENSION: self.control.extension(bundle.ca_pem)},
            )
            write_kubeconfig(self.kubeconfig, config)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.close()
            self.control = None
        for cluster in list(self.clusters.values()):
            await cluster.stop()
        self.clusters.clear()

    async def fail(self, name: str, fault: Fault) -> None:
        async with self._lock:
            await self.cluster(name).fail(fault)

    async def heal(self, name: str) -> None:
        async with self._lock:
            await self.cluster(name).heal()

    async def set_nodes(self, name: str, count: int) -> None:
        """Resize ``name``'s node pool; ValueError when ``count`` is out of range."""
        await self.cluster(name).set_nodes(count)

    def describe(self) -> list[dict[str, Any]]:
        return [c.describe() for c in self.clusters.values()]


async def serve_until_signalled(runtime: SimulatorRuntime, *, announce: bool = True) -> None:
    """Start ``runtime``, print its contexts, run until SIGINT or SIGTERM, then stop everything.

    The process is the simulator's: its cycle collector is paced
    (:mod:`federation.apimachinery.collecting`)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pacer = asyncio.create_task(pace_collector(), name="federation-sim/collector")
    try:
        await runtime.start()
        if announce:
            for cluster in runtime.clusters.values():
                print(
                    f"cluster {cluster.name:<24} {cluster.server}  (context {cluster.name}, region "
                    f"{cluster.spec.region_name}, {cluster.workload.node_count} nodes)",
                    flush=True,
                )
            print(f"kubeconfig {runtime.kubeconfig}", flush=True)
            print(READY_LINE, flush=True)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        pacer.cancel()
        await asyncio.gather(pacer, return_exceptions=True)
        await runtime.stop()


class Simulator:
    """The simulator in a background thread with its own event loop; a blocking API for tests.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with Simulator(["us-central1", "europe-west1"], kubeconfig=tmp / "sim.kubeconfig") as sim:
            sim.fail("us-central1", "down")
            ...
    """

    def __init__(
        self,
        clusters: Iterable[str | ClusterSpec],
        *,
        kubeconfig: Path,
        nodes: int = 3,
        pods_per_node: int = 10,
        start_delay: float = 1.0,
        schemas: SchemaSet | None = None,
        first_index: int = 0,
    ) -> None:
        self.specs = cluster_specs(
            clusters, nodes=nodes, pods_per_node=pods_per_node, start_delay=start_delay
        )
        self.kubeconfig = kubeconfig
        self._schemas = schemas
        self.first_index = first_index
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: SimulatorRuntime | None = None
        self._stop: asyncio.Event | None = None
        self._ready: Future[None] = Future()

    @property
    def runtime(self) -> SimulatorRuntime:
        if self._runtime is None:
            raise SimulatorError("the simulator is not running")
        return self._runtime

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def start(self) -> Simulator:
        if self._thread is not None:
            raise SimulatorError("the simulator is already started")
        self._thread = threading.Thread(target=self._main, name="federation-sim", daemon=True)
        self._thread.start()
        try:
            self._ready.result(timeout=START_TIMEOUT)
        except BaseException:
            self._thread.join(timeout=STOP_TIMEOUT)
            self._thread = None
            raise
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runtime = SimulatorRuntime(
            self.specs, kubeconfig=self.kubeconfig, schemas=self._schemas, first_index=self.first_index
        )
        starting = asyncio.ensure_future(runtime.start())
        await asyncio.wait({starting})
        failure = (
            SimulatorError("the simulator start was cancelled")
            if starting.cancelled()
            else starting.exception()
        )
        if failure is not None:
            self._ready.set_exception(failure)
            return
        self._runtime = runtime
        self._ready.set_result(None)
        try:
            await self._stop.wait()
        finally:
            self._runtime = None
            await runtime.stop()

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float = 30.0) -> T:
        """Run ``coro`` on the simulator's loop and return its result."""
        if self._loop is None or self._runtime is None:
            coro.close()
            raise SimulatorError("the simulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def fail(
        self, cluster: str, mode: FaultMode, *, status: int = 500, retry_after: int = 1, latency: float = 1.0
    ) -> None:
        fault = Fault(mode, status=status, retry_after=retry_after, latency=latency)
        self.call(self.runtime.fail(cluster, fault))

    def heal(self, cluster: str) -> None:
        self.call(self.runtime.heal(cluster))

    def set_nodes(self, cluster: str, count: int) -> None:
        self.call(self.runtime.set_nodes(cluster, count))

    def cluster(self, name: str) -> SimulatedCluster:
        return self.runtime.cluster(name)

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=STOP_TIMEOUT)
        if thread.is_alive():
            raise SimulatorError("the simulator did not stop in time")
        self._thread = None
        self._loop = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimulatorProcess:
    """``python -m federation.sim`` in a child process; stop it with :meth:`stop` (SIGTERM).

    Several can run side by side, each with its own clusters (names unique across them), its own
    ``kubeconfig`` path, ports, CA and control API; give each a distinct ``first_index`` range
    (the previous processes' cluster counts summed) and their clusters get the addresses one process
    would have given them::

        names = [f"bench-{i:03d}" for i in range(100)]
        sims = [
            SimulatorProcess(names[k : k + 25], kubeconfig=tmp / f"sim-{k}.kubeconfig", first_index=k)
            for k in range(0, 100, 25)
        ]
    """

    def __init__(
        self,
        clusters: Iterable[str],
        *,
        kubeconfig: Path,
        nodes: int = 3,
        pods_per_node: int = 10,
        start_delay: float = 1.0,
        first_index: int = 0,
    ) -> None:
        self.clusters = list(clusters)
        cluster_specs(self.clusters)
        if first_index < 0:
            raise SimulatorError("the first cluster index cannot be negative")
        self.kubeconfig = kubeconfig
        self.args = [
            sys.executable,
            "-m",
            "federation.sim",
            "--clusters",
            ",".join(self.clusters),
            "--kubeconfig",
            str(kubeconfig),
            "--nodes",
            str(nodes),
            "--pods-per-node",
            str(pods_per_node),
            "--start-delay",
            str(start_delay),
            "--first-index",
            str(first_index),
        ]
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self, *, timeout: float = START_TIMEOUT) -> SimulatorProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        ready = threading.Event()
        reader = threading.Thread(target=self._read, args=(ready,), name="federation-sim-output", daemon=True)
        self._reader = reader
        reader.start()
        while not ready.wait(timeout=0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SimulatorError("the simulator process did not start:\n" + "".join(self.output))
        return self

    def _read(self, ready: threading.Event) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.strip() == READY_LINE:
                ready.set()

    def control(self) -> ControlClient:
        return ControlClient.from_kubeconfig(self.kubeconfig)

    def stop(self, *, timeout: float = STOP_TIMEOUT) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
