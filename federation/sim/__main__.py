"""``python -m federation.sim``: the simulator as a process of its own (what ``SimulatorProcess`` runs).

The same as ``fedctl sim up`` with the same options, for callers that must not depend on the CLI
layer: it starts the clusters, writes the kubeconfig, prints ``simulator ready`` and runs until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from federation.sim.simulator import SimulatorError, SimulatorRuntime, cluster_specs, serve_until_signalled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m federation.sim", description=__doc__)
    parser.add_argument("--clusters", required=True, help="comma-separated cluster names")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--pods-per-node", type=int, default=10)
    parser.add_argument("--start-delay", type=float, default=1.0)
    parser.add_argument(
        "--first-index",
        type=int,
        default=0,
        help="address plan index of the first cluster (processes sharing a fleet: disjoint ranges)",
    )
    args = parser.parse_args(argv)
    try:
        specs = cluster_specs(
            [c.strip() for c in args.clusters.split(",") if c.strip()],
            nodes=args.nodes,
            pods_per_node=args.pods_per_node,
            start_delay=args.start_delay,
        )
        runtime = SimulatorRuntime(specs, kubeconfig=args.kubeconfig, first_index=args.first_index)
        asyncio.run(serve_until_signalled(runtime))
    except (SimulatorError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
