"""Benchmark: creates per second through ``federation.members`` across N simulated clusters.

    .venv/bin/python -m tests.bench.members [--clusters 10] [--creates 1000] [--threads 16]

Starts ``python -m federation.sim`` with N clusters in a child process (so the simulator does not
share this process's interpreter lock), builds one :class:`~federation.members.MemberClient` per
cluster from credentials read as the federation reads them (a Cluster and its Secret), warms each
pool (one GET per cluster), then creates ``--creates`` Secrets round-robin over the clusters from
``--threads`` threads, as the propagation controller's per-member queues do. Prints creates/s and
the create round trip (p50, p99, max), and how many TCP connections this process opened to the
simulator (pooled connections are reused: at most one per thread and cluster).

DESIGN.md's target on the 2-core development machine: 700-900 creates/s with 16-32 threads.
Bounded in count (``--creates`` at most 20000) and time (every wait has a deadline).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from federation.apimachinery import NAMESPACES, SECRETS, read_kubeconfig
from federation.members import MemberClient, credentials_from_secret
from federation.sim import SimulatorProcess

MAX_CREATES = 20_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def member_client(kubeconfig: Path, name: str, pool_size: int) -> MemberClient:
    ctx = read_kubeconfig(kubeconfig).context(name)
    assert ctx.token is not None
    assert ctx.ca_pem is not None
    cluster = {"metadata": {"name": name}, "spec": {"server": ctx.server, "secretRef": {"name": name}}}
    data = {"token": ctx.token.encode(), "ca.crt": ctx.ca_pem}
    secret = {"data": {key: base64.b64encode(value).decode() for key, value in data.items()}}
    return MemberClient(name, credentials_from_secret(cluster, secret), pool_size=pool_size)


def connections_to(ports: set[int]) -> int:
    return sum(1 for c in psutil.net_connections("tcp") if c.raddr and c.raddr.port in ports and c.pid)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    creates = max(1, min(args.creates, MAX_CREATES))
    threads = max(1, args.threads)
    names = [f"bench-{i:03d}" for i in range(max(1, args.clusters))]
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "sim.kubeconfig"
        with SimulatorProcess(names, kubeconfig=kubeconfig, nodes=1, pods_per_node=10):
            clients = [member_client(kubeconfig, name, pool_size=threads) for name in names]
            ports = {int(c.server.rsplit(":", 1)[1]) for c in clients}
            try:
                for member in clients:
                    member.get(NAMESPACES, "", "default")  # warm: TLS handshake, schema load

                def create(i: int) -> float:
                    body = {"metadata": {"name": f"bench-{run}-{i}"}, "stringData": {"n": str(i)}}
                    t0 = time.perf_counter()
                    clients[i % len(clients)].create(SECRETS, "default", body)
                    return time.perf_counter() - t0

                with ThreadPoolExecutor(threads, thread_name_prefix="bench") as pool:
                    started = time.perf_counter()
                    latencies = list(pool.map(create, range(creates), timeout=300))
                    elapsed = time.perf_counter() - started
                opened = connections_to(ports)
            finally:
                for member in clients:
                    member.close()
    ms = [x * 1000 for x in latencies]
    print(f"clusters                  {len(names)} (simulator in a child process)")
    print(f"threads                   {threads}")
    print(f"creates                   {creates} Secrets, round-robin, through MemberClient")
    print(f"throughput                {creates / elapsed:.0f} creates/s ({elapsed:.2f} s)")
    print(
        f"create round trip         p50 {statistics.median(ms):.2f} ms  p99 {percentile(ms, 0.99):.2f} ms  "
        f"max {max(ms):.2f} ms"
    )
    print(f"connections open at end   {opened} (at most threads x clusters = {threads * len(names)})")


if __name__ == "__main__":
    main()
