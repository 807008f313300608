"""Benchmark: the simulator under a burst of ReplicaSets; pods-ready time, its CPU, /readyz latency.

    .venv/bin/python -m tests.bench.simulator [--clusters 10] [--replicasets 1000] [--per-namespace 100]

Starts ``python -m federation.sim`` with ``--clusters`` clusters in one child process (one event loop,
as the controllers' benchmarks run it), then, from this process with the official client:

* creates ``--replicasets`` ReplicaSets of 1-3 replicas (``i % 3 + 1``), ``--per-namespace`` to a
  namespace, namespace ``j`` in cluster ``j mod clusters`` (so 1,000 over 10 clusters is one
  namespace of 100 ReplicaSets and ~200 pods per cluster; 10,000 is ten namespaces and ~2,000 pods
  per cluster), from ``--threads`` threads;
* meanwhile probes ``/readyz`` of the first cluster every 0.2 s with a 5 s timeout on one kept-alive
  connection, as the federation's health checks do (a timeout counts as 5 s);
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
import ssl
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


class Prober:
    """``GET /readyz`` of one cluster every :data:`PROBE_INTERVAL` s on a background thread."""

    def __init__(self, kubeconfig: Path, name: str) -> None:
        ctx = read_kubeconfig(kubeconfig).context(name)
        assert ctx.ca_pem is not None
        url = urlsplit(ctx.server)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 443
        self.tls = ssl.create_default_context(cadata=ctx.ca_pem.decode())
        self.headers = {"Authorization": f"Bearer {ctx.token}"}
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readyz-prober", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=PROBE_TIMEOUT + 1)

    def _run(self) -> None:
        conn: http.client.HTTPSConnection | None = None
        while not self._stop.is_set():
            began = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection(
                        self.host, self.port, context=self.tls, timeout=PROBE_TIMEOUT
                    )
                conn.request("GET", "/readyz", headers=self.headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.failures += 1
                self.latencies.append(time.perf_counter() - began)
            except (OSError, http.client.HTTPException):
                self.failures += 1
                self.latencies.append(max(PROBE_TIMEOUT, time.perf_counter() - began))
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(max(0.0, PROBE_INTERVAL - (time.perf_counter() - began)))
        if conn is not None:
            conn.close()


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
                idle = len(prober.latencies)
                cpu0 = sum(proc.cpu_times()[:2])
                t0 = time.perf_counter()

                def create(item: tuple[str, str, str, int]) -> None:
                    cluster, ns, rs, replicas = item
                    client.AppsV1Api(apis[cluster]).create_namespaced_replica_set(
                        ns, replicaset(rs, replicas), _request_timeout=60
                    )

                with ThreadPoolExecutor(args.threads, thread_name_prefix="bench") as pool:
                    list(pool.map(create, layout, timeout=args.timeout))
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
                prober.stop()
                for api in apis.values():
                    api.close()
    under_load = prober.latencies[idle:]
    ms = [x * 1000 for x in under_load] or [0.0]
    total = sum(wanted.values())
    print(
        f"clusters                 {clusters} in one simulator process ({nodes} nodes x {pods_per_node} pods)"
    )
    print(
        f"replicasets              {count} of 1-3 replicas, {per_ns} per namespace "
        f"({total} pods, at most {max(wanted.values())} in one cluster)"
    )
    print(f"all created after        {created:.2f} s ({count / created:.0f}/s, {args.threads} threads)")
    if pending:
        print(f"all pods Ready           NOT within {args.timeout:.0f} s ({len(pending)} clusters short)")
    else:
        print(f"all pods Ready after     {ready:.2f} s")
    print(f"simulator CPU            {cpu:.1f} s over {ready:.1f} s ({cpu / ready * 100:.0f} % of one core)")
    print(
        f"/readyz (cluster {names[0]})  {len(under_load)} probes: p50 {statistics.median(ms):.1f} ms  "
        f"p99 {percentile(ms, 0.99):.1f} ms  max {max(ms):.1f} ms  over 1 s: "
        f"{sum(1 for x in ms if x > 1000)}  failed: {prober.failures}"
    )
    print(f"load average at the end  {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
