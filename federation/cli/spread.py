"""``fedctl spread``: one table of where every federated ReplicaSet runs, by cluster, live if asked.

Why it exists: during a failover an operator wants one screen that answers "which regions are up,
where do the replicas run, are they ready, where does the traffic go" without reading Placements one
by one. Rows are ReplicaSets (``namespace/name``), columns are the registered clusters; the header
rows show each cluster's health (from its Ready condition; cordoned clusters say so) and, per
LoadBalancer Service, its share of the traffic (the Placements' ``trafficShare``). A cell is
``ready/desired`` from the ReplicaSet's Placement (``<name>-replicaset``): desired is the plan's
share, ready what the member reported; a member that cannot be reached shows ``?/N Stale`` (its last
counts are not current, so they are not added up), any other state than Ready is written after the
numbers. The TOTAL column is the federated ReplicaSet's own status (ready / ``spec.replicas``, and
what cannot be placed); the TOTAL row sums each cluster's cells.

:func:`spread_of` builds the table from the API's lists (pure, tested without a server),
:func:`render_text` prints it plainly (stable for grep and the tests), :func:`render_rich` with colour
for a terminal. The command reads only (GETs).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from federation.apimachinery import REPLICASETS, Obj
from federation.apis import CLUSTERS, PLACEMENTS, placement_name
from federation.cli.client import CliError, FederationClient, client_from_options
from federation.cli.registering import health, is_cordoned, table

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

TOTAL = "TOTAL"


@dataclass(frozen=True)
class Cell:
    """One ReplicaSet in one cluster."""

    desired: int
    ready: int | None
    """None: not known now (the member cannot be reached)."""
    state: str
    """Ready, Progressing, Pending, Stale, ... ('' when the cluster has nothing of it)."""

    @property
    def text(self) -> str:
        if not self.state and not self.desired:
            return "-"
        ready = "?" if self.ready is None else str(self.ready)
        text = f"{ready}/{self.desired}"
        return text if self.state in ("Ready", "") else f"{text} {self.state}"


@dataclass(frozen=True)
class Row:
    name: str
    """``namespace/name``."""
    cells: Mapping[str, Cell] = field(hash=False)
    ready: int
    desired: int
    unschedulable: int

    @property
    def total(self) -> str:
        text = f"{self.ready}/{self.desired}"
        return f"{text} ({self.unschedulable} unplaced)" if self.unschedulable else text


@dataclass(frozen=True)
class ClusterColumn:
    name: str
    health: str
    """Ready, Offline, Unknown, Gone (no longer registered), with ``,Cordoned`` when cordoned."""
    traffic: Mapping[str, str] = field(hash=False)
    """Service ``namespace/name`` -> its share of the traffic here (``67%``)."""


@dataclass(frozen=True)
class Spread:
    clusters: tuple[ClusterColumn, ...]
    services: tuple[str, ...]
    """LoadBalancer Services with traffic shares, ``namespace/name``, sorted."""
    rows: tuple[Row, ...]

    def cluster_total(self, cluster: str) -> str:
        ready = sum(r.cells[cluster].ready or 0 for r in self.rows if cluster in r.cells)
        desired = sum(r.cells[cluster].desired for r in self.rows if cluster in r.cells)
        return f"{ready}/{desired}"

    @property
    def total(self) -> str:
        text = f"{sum(r.ready for r in self.rows)}/{sum(r.desired for r in self.rows)}"
        unplaced = sum(r.unschedulable for r in self.rows)
        return f"{text} ({unplaced} unplaced)" if unplaced else text


def _meta(obj: Obj) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _key(namespace: Any, name: Any) -> str:
    return f"{namespace or ''}/{name or ''}"


def _cells(placement: Obj | None, clusters: Sequence[str]) -> dict[str, Cell]:
    spec = (placement or {}).get("spec") or {}
    status = (placement or {}).get("status") or {}
    planned = {
        c.get("name"): _int(c.get("replicas")) for c in spec.get("clusters") or [] if isinstance(c, dict)
    }
    seen = {c.get("name"): c for c in status.get("clusters") or [] if isinstance(c, dict)}
    cells: dict[str, Cell] = {}
    for cluster in clusters:
        report = seen.get(cluster)
        desired = planned.get(cluster, _int((report or {}).get("desiredReplicas")) if report else 0)
        if report is None:
            cells[cluster] = Cell(desired, 0, "Pending" if cluster in planned else "")
            continue
        state = str(report.get("state") or "Pending")
        ready = None if state == "Stale" else _int(report.get("readyReplicas"))
        cells[cluster] = Cell(desired, ready, state)
    return cells


def spread_of(clusters: Sequence[Obj], replicasets: Sequence[Obj], placements: Sequence[Obj]) -> Spread:
    """The table from the Clusters, the federated ReplicaSets and the Placements (of any kinds)."""
    by_key: dict[tuple[str, str], Obj] = {}
    for p in placements:
        m = _meta(p)
        by_key[(str(m.get("namespace") or ""), str(m.get("name") or ""))] = p
    health_of = {
        str(_meta(c).get("name")): health(c).split(" ")[0] + (",Cordoned" if is_cordoned(c) else "")
        for c in clusters
    }
    names = set(health_of)
    for p in placements:
        for part in ("spec", "status"):
            names.update(str(c.get("name")) for c in (p.get(part) or {}).get("clusters") or [])
    ordered = sorted(names)
    traffic: dict[str, dict[str, str]] = {name: {} for name in ordered}
    services: set[str] = set()
    for p in placements:
        resource = (p.get("spec") or {}).get("resource") or {}
        if resource.get("kind") != "Service":
            continue
        service = _key(resource.get("namespace") or _meta(p).get("namespace"), resource.get("name"))
        for report in (p.get("status") or {}).get("clusters") or []:
            if isinstance(report, dict) and "trafficShare" in report and report.get("name") in traffic:
                traffic[str(report["name"])][service] = str(report["trafficShare"])
                services.add(service)
    rows = []
    for rs in sorted(replicasets, key=lambda o: (str(_meta(o).get("namespace")), str(_meta(o).get("name")))):
        m = _meta(rs)
        namespace, name = str(m.get("namespace") or ""), str(m.get("name") or "")
        placement = by_key.get((namespace, placement_name("ReplicaSet", name)))
        rows.append(
            Row(
                name=_key(namespace, name),
                cells=_cells(placement, ordered),
                ready=_int((rs.get("status") or {}).get("readyReplicas")),
                desired=_int((rs.get("spec") or {}).get("replicas", 1)),
                unschedulable=_int(((placement or {}).get("spec") or {}).get("unschedulable")),
            )
        )
    columns = tuple(ClusterColumn(n, health_of.get(n, "Gone"), traffic[n]) for n in ordered)
    return Spread(columns, tuple(sorted(services)), tuple(rows))


def _lines(spread: Spread) -> list[list[str]]:
    """Header, the health row, one traffic row per Service, the ReplicaSets, the TOTAL row."""
    names = [c.name for c in spread.clusters]
    lines = [["REPLICASET", *names, TOTAL]]
    lines.append(["HEALTH", *(c.health for c in spread.clusters), ""])
    for service in spread.services:
        lines.append([f"TRAFFIC {service}", *(c.traffic.get(service, "-") for c in spread.clusters), ""])
    for row in spread.rows:
        lines.append([row.name, *(row.cells[n].text for n in names), row.total])
    lines.append([TOTAL, *(spread.cluster_total(n) for n in names), spread.total])
    return lines


def render_text(spread: Spread) -> str:
    """The table as plain text (no colour), kubectl-style columns."""
    header, *rows = _lines(spread)
    text = table(header, rows)
    if not spread.rows:
        text += "\n(no federated ReplicaSets)"
    return text


_STYLE = {"Ready": "green", "Offline": "bold red", "Unknown": "yellow", "Gone": "dim"}


def _cell_style(text: str) -> str | None:
    if "Stale" in text or "Failed" in text or "Conflict" in text:
        return "red"
    if any(word in text for word in ("Progressing", "Pending", "Deleting")):
        return "yellow"
    return None


def render_rich(spread: Spread, *, title: str | None = None) -> Table:
    """The same table for a terminal: health in colour, troubled cells highlighted."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    header, *rows = _lines(spread)
    out = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE, pad_edge=False)
    for i, name in enumerate(header):
        out.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    health_row, *rest = rows
    out.add_row(
        *(
            Text(v, style=_STYLE.get(v.split(",")[0], "") + (" underline" if "Cordoned" in v else ""))
            for v in health_row
        ),
        end_section=not spread.services,
    )
    for i, values in enumerate(rest):
        last = i == len(rest) - 1
        styled = [Text(values[0], style="bold" if last else "")]
        styled += [Text(v, style=("bold" if last else _cell_style(v)) or "") for v in values[1:]]
        out.add_row(*styled, end_section=i == len(spread.services) - 1 or i == len(rest) - 2)
    return out


# -- the command ----------------------------------------------------------------------------------------


def fetch(client: FederationClient, namespace: str | None) -> Spread:
    """Three GETs: the Clusters, the federated ReplicaSets and the Placements."""
    return spread_of(
        client.list(CLUSTERS, None), client.list(REPLICASETS, namespace), client.list(PLACEMENTS, namespace)
    )


def _title(namespace: str | None) -> str:
    where = f"namespace {namespace}" if namespace else "all namespaces"
    return f"fedctl spread ({where}) at {datetime.now().strftime('%H:%M:%S')}"


def _live(client: FederationClient, namespace: str | None, interval: float, duration: float | None) -> None:
    """A terminal: the table redrawn in place every ``interval`` seconds until Ctrl-C (or --duration)."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def frame() -> RenderableType:
        try:
            return render_rich(fetch(client, namespace), title=_title(namespace))
        except CliError as err:  # the federation away for a moment: say so, keep watching
            return Text(f"{_title(namespace)}\nerror: {err}", style="red")

    console = Console()
    end = None if duration is None else time.monotonic() + duration
    with Live(frame(), console=console, auto_refresh=False, transient=False) as live:
        while end is None or time.monotonic() < end:
            time.sleep(interval if end is None else max(0.0, min(interval, end - time.monotonic())))
            live.update(frame(), refresh=True)


def _reprint(
    client: FederationClient, namespace: str | None, interval: float, duration: float | None
) -> None:
    """Not a terminal: the table printed again every ``interval`` seconds, each under a time line."""
    end = None if duration is None else time.monotonic() + duration
    while True:
        try:
            text = render_text(fetch(client, namespace))
        except CliError as err:
            text = f"error: {err}"
        print(f"{_title(namespace)}\n{text}\n", flush=True)
        if end is not None and time.monotonic() + interval > end:
            return
        time.sleep(interval)


def spread(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace (default: all).")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep the table up to date until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between refreshes with --watch.", min=0.2, max=3600)
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop watching after this many seconds.", min=0)
    ] = None,
) -> None:
    """Show every federated ReplicaSet by cluster: ready/desired in each cell.

    Across the top: each cluster's health and, per LoadBalancer Service, its share of the traffic.
    A member that cannot be reached shows ?/N Stale. TOTAL is the federated ReplicaSet's status
    (ready/desired, and replicas no cluster can take). With --watch the table is redrawn in place
    on a terminal (Ctrl-C ends it), and printed again every --interval seconds elsewhere.

    Example: fedctl spread -n shop --watch
    """
    with client_from_options(ctx) as client:
        try:
            if watch and sys.stdout.isatty():
                _live(client, namespace, interval, duration)
            elif watch:
                _reprint(client, namespace, interval, duration)
            elif sys.stdout.isatty():
                from rich.console import Console

                Console().print(render_rich(fetch(client, namespace)))
            else:
                typer.echo(render_text(fetch(client, namespace)))
        except KeyboardInterrupt:  # how a watch ends
            return
