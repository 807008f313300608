"""Benchmark: 100 simulated clusters in one process; idle memory and create round trips.

    .venv/bin/python -m tests.bench.sim_scale [--clusters 100] [--creates 1000]

Starts ``python -m federation.sim`` with N clusters (one process, one event loop), then measures from
this process with the official client, as the federation reaches members:

* start time (spawn until ``simulator ready``: every cluster serving and the kubeconfig written);
* the simulator's resident memory when idle, and its CPU use over 5 idle seconds;
* create round trips: ``--creates`` Secrets created one after another, round-robin over the clusters,
  on warm connections (one GET per cluster first); p50, p99 and max;
* resident memory after the creates.

Bounded in count (``--creates`` at most 20000) and time (every wait has a deadline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from federation.sim import SimulatorProcess

MAX_CREATES = 20_000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--creates", type=int, default=1000)
    args = parser.parse_args()
    creates = max(1, min(args.creates, MAX_CREATES))
    names = [f"bench-{i:03d}" for i in range(args.clusters)]
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "sim.kubeconfig"
        started = time.perf_counter()
        with SimulatorProcess(names, kubeconfig=kubeconfig, nodes=3, pods_per_node=10) as sim:
            start_seconds = time.perf_counter() - started
            assert sim.process is not None
            pid = sim.process.pid
            apis: list[client.ApiClient] = []
            try:
                for name in names:
                    configuration = client.Configuration()
                    config.load_kube_config(str(kubeconfig), context=name, client_configuration=configuration)
                    apis.append(client.ApiClient(configuration))
                time.sleep(2)
                idle_rss = rss_mib(pid)
                cpu_before = cpu_seconds(pid)
                time.sleep(5)
                idle_cpu = (cpu_seconds(pid) - cpu_before) / 5
                cores = [client.CoreV1Api(api) for api in apis]
                for core in cores:
                    core.list_namespaced_secret("default", limit=1)  # warm: TLS handshake, schema load
                latencies: list[float] = []
                bench_started = time.perf_counter()
                for i in range(creates):
                    core = cores[i % len(cores)]
                    body = {"metadata": {"name": f"bench-{i}"}, "stringData": {"n": str(i)}}
                    t0 = time.perf_counter()
                    core.create_namespaced_secret("default", body)
                    latencies.append(time.perf_counter() - t0)
                elapsed = time.perf_counter() - bench_started
                after_rss = rss_mib(pid)
            finally:
                for api in apis:
                    api.close()
    ms = [x * 1000 for x in latencies]
    print(f"clusters                  {args.clusters}")
    print(f"start (spawn to ready)    {start_seconds:.2f} s")
    print(f"idle RSS                  {idle_rss:.0f} MiB ({idle_rss / args.clusters:.2f} MiB per cluster)")
    print(f"idle CPU                  {idle_cpu * 100:.1f} % of one core")
    print(f"creates                   {creates} Secrets, round-robin, sequential, official client")
    print(
        f"create round trip         p50 {statistics.median(ms):.2f} ms  p99 {percentile(ms, 0.99):.2f} ms  "
        f"max {max(ms):.2f} ms  ({creates / elapsed:.0f}/s)"
    )
    print(f"creates over 10 ms        {sum(1 for x in ms if x > 10)} (the first pays the schema compile)")
    print(f"RSS after creates         {after_rss:.0f} MiB")


if __name__ == "__main__":
    main()
