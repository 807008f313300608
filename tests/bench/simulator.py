"""Benchmark: the simulator under a burst of ReplicaSets; pods-ready time, its CPU, /readyz latency.

    .venv/bin/python -m tests.bench.simulator [--clusters 10] [--replicasets 1000] [--per-namespace 100]

Starts ``python -m federation.sim`` with ``--clusters`` clusters in one child process (one event loop,
as the controllers' benchmarks run it), then, from this process with the official client:

* creates ``--replicasets`` ReplicaSets of 1-3 replicas (``i % 3 + 1``), ``--per-namespace`` to a
  namespace, namespace ``j`` in cluster ``j mod clusters`` (so 1,000 over 10 clusters is one
  namespace of 100 ReplicaSets and ~200 pods per cluster; 10,000 is ten namespaces and ~2,000 pods
  per cluster), from ``--threads`` threads;
* meanwhile probes ``/readyz`` of the first cluster every 0.2 s with a 5 s timeout on one kept-alive
  connection, as the federation's health checks do (a timeout counts as 5 s), from a process of its
  own (this one's threads are busy creating);
* and reads each cluster's ReplicaSets once a second until the sum of ``readyReplicas`` is what was
  asked (``--timeout`` at most).

Prints: seconds until every ReplicaSet is created and until every pod is Ready (from the first
create), the simulator's CPU seconds over that time, and the /readyz latencies (p50, p99, max,
probes over 1 s and timeouts). Each cluster gets enough nodes for its pods. Asserts nothing;
bounded in count (``--replicasets`` at most 20,000) and time (every wait has a deadline). Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import ssl
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from kubernetes import client, config

from federation.apimachinery import read_kubeconfig
from federation.sim import SimulatorProcess

MAX_REPLICASETS = 20_000
PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 5.0
POLL = 1.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def api_for(kubeconfig: Path, name: str, pool: int) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(str(kubeconfig), context=name, client_configuration=configuration)
    configuration.connection_pool_maxsize = pool
    return client.ApiClient(configuration)


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        },
    }


def _probe(host: str, port: int, ca_pem: str, token: str, stop: Any, out: Connection) -> None:
    """The prober process: ``GET /readyz`` every :data:`PROBE_INTERVAL` s on one kept-alive
    connection until ``stop`` is set; sends back (monotonic start, seconds, answered 200) per probe."""
    tls = ssl.create_default_context(cadata=ca_pem)
    headers = {"Authorization": f"Bearer {token}"}
    samples: list[tuple[float, float, bool]] = []
    conn: http.client.HTTPSConnection | None = None
    while not stop.is_set():
        began = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPSConnection(host, port, context=tls, timeout=PROBE_TIMEOUT)
            conn.request("GET", "/readyz", headers=headers)
            response = conn.getresponse()
            response.read()
            samples.append((began, time.monotonic() - began, response.status == 200))
        except (OSError, http.client.HTTPException):
            samples.append((began, max(PROBE_TIMEOUT, time.monotonic() - began), False))
            if conn is not None:
                conn.close()
            conn = None
        stop.wait(max(0.0, PROBE_INTERVAL - (time.monotonic() - began)))
    if conn is not None:
        conn.close()
    out.send(samples)
    out.close()


class Prober:
    """:func:`_probe` on one cluster, in a process of its own: the latencies are the simulator's, not
    those of this process's threads waiting for its interpreter lock while they create."""

    def __init__(self, kubeconfig: Path, name: str) -> None:
        ctx = read_kubeconfig(kubeconfig).context(name)
        assert ctx.ca_pem is not None
        url = urlsplit(ctx.server)
        spawn = multiprocessing.get_context("spawn")
        self._stop = spawn.Event()
        self._results, sender = spawn.Pipe(duplex=False)
        self._process = spawn.Process(
            target=_probe,
            args=(url.hostname, url.port, ctx.ca_pem.decode(), ctx.token or "", self._stop, sender),
            name="readyz-prober",
            daemon=True,
        )

    def start(self) -> None:
        self._process.start()

    def stop(self) -> list[tuple[float, float, bool]]:
        """Stop probing; every probe taken (bounded wait)."""
        self._stop.set()
        samples: list[tuple[float, float, bool]] = []
        if self._process.pid is not None and self._results.poll(PROBE_TIMEOUT + 5):
            samples = self._results.recv()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        return samples


def ready_replicas(api: client.ApiClient, namespaces: list[str]) -> int:
    apps = client.AppsV1Api(api)
    total = 0
    for ns in namespaces:
        raw = apps.list_namespaced_replica_set(ns, _preload_content=False, _request_timeout=30)
        for item in json.loads(raw.data)["items"]:
            total += int((item.get("status") or {}).get("readyReplicas") or 0)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--replicasets", type=int, default=1000)
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds until every pod is Ready")
    args = parser.parse_args()
    count = max(1, min(args.replicasets, MAX_REPLICASETS))
    clusters = max(1, args.clusters)
    per_ns = max(1, args.per_namespace)
    names = [f"bench-{i:03d}" for i in range(clusters)]
    # namespace j holds ReplicaSets j*per_ns .. (j+1)*per_ns - 1 and lives in cluster j mod clusters
    layout: list[tuple[str, str, str, int]] = []  # cluster, namespace, name, replicas
    for i in range(count):
        j = i // per_ns
        layout.append((names[j % clusters], f"bench-ns-{j:03d}", f"rs-{i:05d}", i % 3 + 1))
    wanted: dict[str, int] = {}
    namespaces: dict[str, list[str]] = {n: [] for n in names}
    for cluster, ns, _, replicas in layout:
        wanted[cluster] = wanted.get(cluster, 0) + replicas
        if ns not in namespaces[cluster]:
            namespaces[cluster].append(ns)
    nodes = 10
    pods_per_node = min(250, math.ceil(max(wanted.values()) / nodes) + 10)

    with tempfile.TemporaryDirectory(prefix="federation-bench-sim-") as tmp:
        kubeconfig = Path(tmp) / "sim.kubeconfig"
        sim = SimulatorProcess(names, kubeconfig=kubeconfig, nodes=nodes, pods_per_node=pods_per_node)
        with sim:
            assert sim.process is not None
            proc = psutil.Process(sim.process.pid)
            apis = {n: api_for(kubeconfig, n, args.threads + 2) for n in names}
            prober = Prober(kubeconfig, names[0])
            try:
                for name, api in apis.items():
                    core = client.CoreV1Api(api)
                    for ns in namespaces[name]:
                        core.create_namespace({"metadata": {"name": ns}})
                time.sleep(1)  # the namespaces' own events settle
                prober.start()
                time.sleep(2)  # a few probes at rest
                t0_monotonic = time.monotonic()
                cpu0 = sum(proc.cpu_times()[:2])
                t0 = time.perf_counter()

                def create(item: tuple[str, str, str, int]) -> None:
                    cluster, ns, rs, replicas = item
                    client.AppsV1Api(apis[cluster]).create_namespaced_replica_set(
                        ns, replicaset(rs, replicas), _request_timeout=60
                    )

                pool = ThreadPoolExecutor(args.threads, thread_name_prefix="bench")
                try:
                    futures = [pool.submit(create, item) for item in layout]
                    done, _ = wait(futures, timeout=args.timeout)
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
                made = sum(1 for f in done if f.exception() is None)
                created = time.perf_counter() - t0
                pending = set(names)
                deadline = t0 + args.timeout
                while pending and time.perf_counter() < deadline:
                    for name in sorted(pending):
                        if ready_replicas(apis[name], namespaces[name]) >= wanted.get(name, 0):
                            pending.discard(name)
                    if pending:
                        time.sleep(POLL)
                ready = time.perf_counter() - t0
                cpu = sum(proc.cpu_times()[:2]) - cpu0
            finally:
                samples = prober.stop()
                for api in apis.values():
                    api.close()
    under_load = [(seconds, ok) for began, seconds, ok in samples if began >= t0_monotonic]
    ms = [seconds * 1000 for seconds, _ in under_load] or [0.0]
    failed = sum(1 for _, ok in under_load if not ok)
    total = sum(wanted.values())
    print(
        f"clusters                 {clusters} in one simulator process ({nodes} nodes x {pods_per_node} pods)"
    )
    print(
        f"replicasets              {count} of 1-3 replicas, {per_ns} per namespace "
        f"({total} pods, at most {max(wanted.values())} in one cluster)"
    )
    if made < count:
        print(f"created                  only {made} of {count} within {args.timeout:.0f} s")
    print(f"all created after        {created:.2f} s ({made / created:.0f}/s, {args.threads} threads)")
    if pending:
        print(f"all pods Ready           NOT within {args.timeout:.0f} s ({len(pending)} clusters short)")
    else:
        print(f"all pods Ready after     {ready:.2f} s")
    print(f"simulator CPU            {cpu:.1f} s over {ready:.1f} s ({cpu / ready * 100:.0f} % of one core)")
    print(
        f"/readyz (cluster {names[0]})  {len(under_load)} probes: p50 {statistics.median(ms):.1f} ms  "
        f"p99 {percentile(ms, 0.99):.1f} ms  max {max(ms):.1f} ms  over 1 s: "
        f"{sum(1 for x in ms if x > 1000)}  failed: {failed}"
    )
    print(f"load average at the end  {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
