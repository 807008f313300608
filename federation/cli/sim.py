"""``fedctl sim``: run simulated member clusters on loopback, and break and heal them.

``up`` runs the simulator in the foreground until SIGINT/SIGTERM; ``fail``, ``heal``, ``nodes`` and
``status`` drive a running one through its control API, found from the kubeconfig ``up`` wrote. See
docs/simulator.md.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from federation.sim import ERROR_CODES, FAULT_MODES, ControlClient, ControlError, Fault

app = typer.Typer(
    help="Simulated member clusters that speak the Kubernetes API on loopback.", no_args_is_help=True
)

KubeconfigOption = Annotated[
    Path, typer.Option("--kubeconfig", help="The kubeconfig the simulator writes (up) or wrote (the others).")
]
ClusterArgument = Annotated[
    str, typer.Argument(help="Name of the simulated cluster (its kubeconfig context).")
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _client(kubeconfig: Path) -> ControlClient:
    try:
        return ControlClient.from_kubeconfig(kubeconfig)
    except ControlError as err:
        raise _fail(str(err)) from None


@app.command()
def up(
    clusters: Annotated[
        str, typer.Option("--clusters", help="Comma-separated cluster names, e.g. us-central1,asia-east1.")
    ],
    kubeconfig: KubeconfigOption,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes per cluster.", min=0, max=250)] = 3,
    pods_per_node: Annotated[
        int, typer.Option("--pods-per-node", help="Pod slots per node.", min=1, max=250)
    ] = 10,
    start_delay: Annotated[
        float,
        typer.Option(
            "--start-delay", help="Seconds from scheduling until a pod is Running and Ready.", min=0
        ),
    ] = 1.0,
) -> None:
    """Start one simulated cluster per name and serve them until interrupted.

    Writes a kubeconfig with one context per cluster (context name = cluster name).

    Example: fedctl sim up --clusters us-central1,europe-west1,asia-east1 --kubeconfig ./sim.kubeconfig
    """
    # The server side is imported here, so the client commands start fast.
    from federation.sim import (
        SimulatorError,
        SimulatorRuntime,
        cluster_specs,
        serve_until_signalled,
    )

    names = [c.strip() for c in clusters.split(",") if c.strip()]
    try:
        specs = cluster_specs(names, nodes=nodes, pods_per_node=pods_per_node, start_delay=start_delay)
        asyncio.run(serve_until_signalled(SimulatorRuntime(specs, kubeconfig=kubeconfig)))
    except SimulatorError as err:
        raise _fail(str(err)) from None


@app.command()
def fail(
    cluster: ClusterArgument,
    kubeconfig: KubeconfigOption,
    mode: Annotated[str, typer.Option("--mode", help=f"One of {', '.join(FAULT_MODES)}.")],
    status: Annotated[
        int,
        typer.Option("--status", help=f"HTTP status for --mode error: {', '.join(map(str, ERROR_CODES))}."),
    ] = 500,
    retry_after: Annotated[int, typer.Option("--retry-after", help="Retry-After seconds of a 429.")] = 1,
    latency: Annotated[
        float, typer.Option("--latency", help="Seconds added to every request (--mode slow).")
    ] = 1.0,
) -> None:
    """Make a simulated cluster (its API and its load-balancer addresses) misbehave until healed.

    down refuses connections, blackhole accepts and never answers, error answers --status,
    slow waits --latency.

    Example: fedctl sim fail us-central1 --mode down --kubeconfig ./sim.kubeconfig
    """
    try:
        fault = Fault(mode, status=status, retry_after=retry_after, latency=latency)  # type: ignore[arg-type]
    except ValueError as err:
        raise _fail(str(err), 2) from None
    try:
        _client(kubeconfig).fail(cluster, fault)
    except ControlError as err:
        raise _fail(str(err)) from None
    typer.echo(f"cluster {cluster}: {mode}")


@app.command()
def heal(cluster: ClusterArgument, kubeconfig: KubeconfigOption) -> None:
    """End a simulated cluster's fault; its objects are as they were.

    Example: fedctl sim heal us-central1 --kubeconfig ./sim.kubeconfig
    """
    try:
        _client(kubeconfig).heal(cluster)
    except ControlError as err:
        raise _fail(str(err)) from None
    typer.echo(f"cluster {cluster}: healed")


@app.command()
def nodes(
    cluster: ClusterArgument,
    count: Annotated[int, typer.Argument(help="The new number of nodes.", min=0, max=250)],
    kubeconfig: KubeconfigOption,
) -> None:
    """Set a simulated cluster's node count (its pod capacity) at run time.

    Example: fedctl sim nodes us-central1 1 --kubeconfig ./sim.kubeconfig
    """
    try:
        _client(kubeconfig).set_nodes(cluster, count)
    except ControlError as err:
        raise _fail(str(err)) from None
    typer.echo(f"cluster {cluster}: {count} nodes")


@app.command()
def status(
    kubeconfig: KubeconfigOption,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """Show the running simulator's clusters, their nodes and faults.

    Example: fedctl sim status --kubeconfig ./sim.kubeconfig
    """
    try:
        clusters = _client(kubeconfig).clusters()
    except ControlError as err:
        raise _fail(str(err)) from None
    if output == "json":
        typer.echo(json.dumps(clusters, indent=2))
        return
    if output != "table":
        raise _fail("--output must be table or json", 2)
    typer.echo(f"{'CLUSTER':<24} {'REGION':<20} {'NODES':>5}  {'FAULT':<10} SERVER")
    for c in clusters:
        fault = (c.get("fault") or {}).get("mode") or "-"
        typer.echo(f"{c['name']:<24} {c['region']:<20} {c['nodes']:>5}  {fault:<10} {c['server']}")
