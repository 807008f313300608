"""``fedctl demo``: the whole federation on one machine, and a region going down, in about a minute.

What ``make demo`` runs. With nothing configured it starts, in a fresh directory (or ``--data-dir``):

1. the control plane: ``fedctl up`` (an embedded Postgres, the API server, the controllers and the
   Caddy global load balancer), on a free port;
2. three simulated regions, ``us-central1``, ``europe-west1`` and ``asia-east1`` (``fedctl sim up``);

then it works as an operator would, printing each ``fedctl`` command before running it: joins the
regions, applies the manifests of ``docs/examples/`` (a namespace, a Secret, a ReplicaSet and a
LoadBalancer Service), shows the spread, sends steady traffic through the Service's global address
(the probe of ``fedctl traffic test``, a line per second), takes ``us-central1`` down and shows the
replicas and the traffic moving, heals it and shows the return, and prints how many requests failed.

It then stops everything it started (the simulator, ``fedctl up`` with its Postgres and Caddy), leaving
no process or port behind; with ``--keep`` it leaves them running, prints the kubeconfigs and the
global address, and stops them on Ctrl-C. Traffic goes to loopback only, bounded in rate and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from federation.apimachinery import SERVICES
from federation.cli.client import CliError, Connection, FederationClient
from federation.cli.probing import Second, Summary, probe
from federation.cli.spread import fetch, render_text

REGIONS = ("us-central1", "europe-west1", "asia-east1")
FAILED_REGION = REGIONS[0]
RATE = 50
"""Requests per second through the global address."""
TRAFFIC_SECONDS = 45
"""The most the traffic runs (it is stopped as soon as the story is told)."""
FEDCTL = str(Path(sys.executable).with_name("fedctl"))


def examples_dir() -> Path:
    """``docs/examples`` of the source tree this package runs from (``make demo``), or of the
    current directory."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base / "docs" / "examples"
        if candidate.is_dir():
            return candidate
    raise CliError("docs/examples/ not found: run the demo from the federation's source tree")


def say(text: str) -> None:
    print(text, flush=True)


def step(text: str) -> None:
    say(f"\n== {text}")


def run(args: list[str], *, kubeconfig: Path, show: str | None = None) -> str:
    """Run ``fedctl ARGS`` as a user would, printing the command line and what it printed."""
    say(f"$ {show or 'fedctl ' + ' '.join(args)}")
    done = subprocess.run(
        [FEDCTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = (done.stdout + done.stderr).rstrip()
    if output:
        say(output)
    if done.returncode != 0:
        raise CliError(f"`fedctl {' '.join(args)}` failed (exit {done.returncode})")
    return done.stdout


class ControlPlane:
    """``fedctl up`` in a child process, its output in ``up.log``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log = data_dir / "up.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "federation.kubeconfig"

    def start(self, *, timeout: float = 120.0) -> None:
        env = {k: v for k, v in os.environ.items() if k != "FEDERATION_DATABASE_URL"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [FEDCTL, "up", "--data-dir", str(self.data_dir), "--port", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"serving on (https?://\S+)", self.log.read_text(errors="replace"))
            if found and self.kubeconfig.exists():
                self.url = found.group(1)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise CliError(
            f"fedctl up did not start; its output:\n{self.log.read_text(errors='replace')[-2000:]}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Regions:
    """The simulated regions (``python -m federation.sim``) in a child process."""

    def __init__(self, kubeconfig: Path) -> None:
        from federation.sim import SimulatorProcess

        self.kubeconfig = kubeconfig
        self.simulator = SimulatorProcess(REGIONS, kubeconfig=kubeconfig, start_delay=1.0)

    def start(self) -> None:
        self.simulator.start()

    def fail(self, region: str) -> None:
        from federation.sim import Fault

        self.simulator.control().fail(region, Fault("down"))

    def heal(self, region: str) -> None:
        self.simulator.control().heal(region)

    def stop(self) -> None:
        self.simulator.stop()


class Traffic:
    """The probe in a thread of its own; its per-second lines wait in a queue for the story."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lines: queue.Queue[str] = queue.Queue()
        self.summary: Summary | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="demo traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        async def go() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            self.summary = await probe(
                self.url,
                rate=RATE,
                duration=TRAFFIC_SECONDS,
                timeout=2.0,
                on_second=self._second,
                stop=self._stop,
            )

        asyncio.run(go())

    def _second(self, second: Second) -> None:
        regions = " ".join(f"{r}={n}" for r, n in sorted(second.by_region.items()))
        failures = " ".join(f"{k}={n}" for k, n in sorted(second.failures.items()))
        self.lines.put(
            f"  traffic {second.t:>3}s  {regions}  failed={second.failed}"
            + (f" ({failures})" if failures else "")
        )

    def show(self) -> None:
        while True:
            try:
                say(self.lines.get_nowait())
            except queue.Empty:
                return

    def stop(self) -> Summary | None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        self.show()
        return self.summary


def follow(client: FederationClient, traffic: Traffic, *, until: Callable[[str], bool], within: float) -> str:
    """Show the traffic lines, and the spread whenever it changes, until ``until(spread text)``."""
    deadline = time.monotonic() + within
    shown = ""
    while True:
        traffic.show()
        try:
            text = render_text(fetch(client, "shop"))
        except CliError as err:
            text = f"(federation busy: {err})"
        if text != shown:
            say(text)
            shown = text
        if until(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def global_address(client: FederationClient, *, within: float = 30.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        service = client.get(SERVICES, "shop", "web")
        for ingress in (service.get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
            ports = ingress.get("ports") or []
            if ingress.get("ip") and ports:
                return f"http://{ingress['ip']}:{ports[0]['port']}/"
        time.sleep(0.3)
    raise CliError("the Service web got no global address")


def _balanced(text: str) -> bool:
    """Every cell of the spread ready and placed (no Stale, no a/b with a < b)."""
    cells = re.findall(r"(\d+)/(\d+)", text)
    return bool(cells) and "Stale" not in text and all(a == b for a, b in cells)


@contextlib.contextmanager
def workspace(data_dir: Path | None, keep: bool) -> Iterator[Path]:
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        yield data_dir.resolve()
        return
    made = Path(tempfile.mkdtemp(prefix="federation-demo-"))
    try:
        yield made
    finally:
        if not keep:
            shutil.rmtree(made, ignore_errors=True)


def story(plane: ControlPlane, regions: Regions, sim_kubeconfig: Path) -> tuple[str, Summary | None]:
    kubeconfig = plane.kubeconfig
    step("Joining the three regions")
    for region in REGIONS:
        run(
            [
                "cluster",
                "join",
                region,
                "--cluster-kubeconfig",
                str(sim_kubeconfig),
                "--cluster-context",
                region,
            ],
            kubeconfig=kubeconfig,
        )
    client = FederationClient(
        Connection.resolve(kubeconfig=kubeconfig, context=None, server=None, token=None)
    )
    with client:
        deadline = time.monotonic() + 30
        while (
            "Offline"
            in (listing := run(["cluster", "list"], kubeconfig=kubeconfig, show="fedctl cluster list"))
            or "Unknown" in listing
        ):
            if time.monotonic() > deadline:
                raise CliError("the regions did not become Ready")
            time.sleep(1)
        step("Applying docs/examples/ (a namespace, a Secret, a ReplicaSet of 6, a LoadBalancer Service)")
        run(
            ["apply", "-f", str(examples_dir()), "--wait", "--timeout", "60s"],
            kubeconfig=kubeconfig,
            show="fedctl apply -f docs/examples/ --wait",
        )
        run(["spread", "-n", "shop"], kubeconfig=kubeconfig)
        url = global_address(client)
        step(f"Steady traffic through the global address {url} ({RATE} requests/s)")
        traffic = Traffic(url)
        traffic.start()
        time.sleep(3)
        traffic.show()
        step(f"Taking {FAILED_REGION} down")
        say(f"$ fedctl sim fail {FAILED_REGION} --mode down")
        regions.fail(FAILED_REGION)
        failed_at = time.monotonic()
        follow(client, traffic, until=lambda t: "Stale" in t and _ready_elsewhere(t), within=30)
        moved = time.monotonic() - failed_at
        say(
            f"-- {FAILED_REGION} is Offline; its replicas run in the other regions "
            f"{moved:.1f} s after the fault"
        )
        time.sleep(2)
        traffic.show()
        step(f"Healing {FAILED_REGION}")
        say(f"$ fedctl sim heal {FAILED_REGION}")
        regions.heal(FAILED_REGION)
        follow(client, traffic, until=_balanced, within=40)
        time.sleep(2)
        summary = traffic.stop()
    return url, summary


def _ready_elsewhere(text: str) -> bool:
    """The spread's row for web: every region but the failed one ready and the total 6/6."""
    return bool(re.search(r"\b6/6\b", text))


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Keep the demo's files here (default: a new temporary dir)."),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave everything running at the end (Ctrl-C stops it).")
    ] = False,
) -> None:
    """The federation in one command: a control plane, three simulated regions, an app, and a region
    going down and coming back, with the traffic through the global load balancer counted.

    Example: fedctl demo
    """
    started = time.monotonic()
    with workspace(data_dir, keep) as home:
        plane = ControlPlane(home)
        regions = Regions(home / "sim.kubeconfig")
        summary: Summary | None = None
        url = ""
        try:
            step("Starting the control plane (fedctl up: Postgres, API server, controllers, Caddy)")
            plane.start()
            say(f"federation API on {plane.url}; kubeconfig {plane.kubeconfig}")
            step(f"Starting three simulated regions: {', '.join(REGIONS)}")
            regions.start()
            url, summary = story(plane, regions, home / "sim.kubeconfig")
            if summary is not None:
                step("Traffic during the whole demo")
                say(
                    f"sent {summary.sent}, failed {summary.failed} ({100 * summary.failure_fraction:.2f} %), "
                    f"by region {dict(sorted(summary.by_region.items()))}, "
                    f"p50 {summary.p50_ms or 0:.0f} ms, p99 {summary.p99_ms or 0:.0f} ms"
                )
            if keep:
                _keep_running(plane, home, url)
        finally:
            step("Stopping")
            regions.stop()
            plane.stop()
            say(f"done in {time.monotonic() - started:.0f} s; nothing left running")


def _keep_running(plane: ControlPlane, home: Path, url: str) -> None:
    say(
        f"\nEverything is running (Ctrl-C stops it):\n"
        f"  export KUBECONFIG={plane.kubeconfig}\n"
        f"  kubectl get clusters; fedctl spread -n shop --watch\n"
        f"  members: kubectl --kubeconfig {home / 'sim.kubeconfig'} --context us-central1 get rs -A\n"
        f"  global address: {url}   (fedctl traffic test {url} --rate 20 --duration 10)\n"
        f"  take a region down: fedctl sim fail europe-west1 --mode down "
        f"--kubeconfig {home / 'sim.kubeconfig'}"
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
