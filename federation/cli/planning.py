"""``fedctl plan -f FILE [--fail CLUSTER ...]``: where a manifest's objects would go, now and after a loss.

Why it exists: before applying a change, or to rehearse an outage, an operator asks "where would the
replicas go, and what if us-central1 went down?" without touching anything. The answer must be the
controllers' answer, so it is computed by the same pure function they call,
:func:`federation.scheduling.plan`, from the same inputs: the object's annotations, the Clusters as
the API holds them now (ready from the Ready condition, cordoned from ``spec.unschedulable``, their
labels) and, for an object that exists already, the replicas its Placement gives each cluster (so
a plan without ``rebalance`` keeps them where they run, as the controllers do). With ``--fail`` the
named clusters are then taken as not ready and the division is done again, starting from where the
replicas are now: the columns show the failover the controllers would make. What fits nowhere is
the ``UNPLACED`` line.

What it does not know: the capacity a member reported as full (the controllers learn it from pods
left unschedulable) and make-before-break holds; so it shows the plan the controllers aim at. It
only reads (GETs of Clusters and Placements); nothing is created, changed or deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Annotated, Any

import typer

from federation.apimachinery import Obj
from federation.apis import CLUSTERS, PLACEMENTS, placement_name
from federation.cli.client import (
    ApiFailure,
    CliError,
    FederationClient,
    client_from_options,
    default_namespace,
)
from federation.cli.manifests import read_manifests
from federation.cli.registering import is_cordoned, is_ready, table
from federation.scheduling import ClusterState, PlacementError, Plan, object_key, plan

PLANNED_KINDS = ("Namespace", "Secret", "Service", "ReplicaSet")
"""The kinds the federation propagates (and so places)."""


def cluster_states(clusters: Iterable[Obj], *, failed: Iterable[str] = ()) -> list[ClusterState]:
    """What the controllers know of each Cluster; the ``failed`` ones taken as not ready."""
    lost = set(failed)
    states = []
    for c in clusters:
        m = c.get("metadata") or {}
        name = str(m.get("name", ""))
        states.append(
            ClusterState(
                name=name,
                labels=MappingProxyType(dict(m.get("labels") or {})),
                ready=is_ready(c) and name not in lost,
                cordoned=is_cordoned(c),
            )
        )
    return states


def placed_replicas(placement: Obj | None) -> dict[str, int]:
    """Cluster -> replicas in a Placement's plan (``spec.clusters``)."""
    out: dict[str, int] = {}
    for entry in ((placement or {}).get("spec") or {}).get("clusters") or []:
        if isinstance(entry, dict) and isinstance(entry.get("replicas"), int):
            out[str(entry.get("name"))] = int(entry["replicas"])
    return out


@dataclass(frozen=True)
class ObjectPlan:
    kind: str
    namespace: str
    name: str
    total: int | None
    now: Plan | None
    after: Plan | None
    error: str | None = None
    exists: bool = False
    clusters: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        replicas = f", {self.total} replicas" if self.total is not None else ""
        known = "exists" if self.exists else "new"
        return f"{self.kind} {where} ({known}{replicas})"


def placement_key(obj: Obj, default_namespace: str) -> tuple[str, str]:
    """(namespace, name) of the Placement of a manifest object (a Namespace's lives in itself)."""
    m = obj.get("metadata") or {}
    kind, name = str(obj.get("kind", "")), str(m.get("name", ""))
    namespace = name if kind == "Namespace" else str(m.get("namespace") or default_namespace)
    return namespace, placement_name(kind, name)


def plan_object(
    obj: Obj,
    clusters: Sequence[Obj],
    *,
    placement: Obj | None,
    fail: Sequence[str],
    default_namespace: str,
) -> ObjectPlan:
    """Now and (with ``fail``) after losing those clusters, for one manifest object."""
    kind = str(obj.get("kind", ""))
    m = obj.get("metadata") or {}
    name = str(m.get("name", ""))
    namespace = "" if kind == "Namespace" else str(m.get("namespace") or default_namespace)
    names = tuple(sorted(str((c.get("metadata") or {}).get("name", "")) for c in clusters))
    total: int | None = None
    if kind == "ReplicaSet":
        value = (obj.get("spec") or {}).get("replicas")
        total = 1 if value is None else int(value)
    base = ObjectPlan(kind, namespace, name, total, None, None, exists=placement is not None, clusters=names)
    annotations = {str(k): str(v) for k, v in (m.get("annotations") or {}).items()}
    current = placed_replicas(placement)
    try:
        key = object_key(namespace, name)
        now = plan(
            annotations=annotations, clusters=cluster_states(clusters), total=total, current=current, key=key
        )
        after = None
        if fail:
            running = {c: n for c, n in now.replicas.items() if n} if total is not None else {}
            after = plan(
                annotations=annotations,
                clusters=cluster_states(clusters, failed=fail),
                total=total,
                current=running,
                key=key,
            )
    except PlacementError as err:
        return replace(base, error=str(err))
    return replace(base, now=now, after=after)


def _cell(result: Plan, cluster: str, *, replicas: bool) -> str:
    if cluster in result.replicas:
        return str(result.replicas[cluster]) if replicas else "yes"
    reason = result.excluded.get(cluster)
    return f"- ({reason})" if reason else "-"


def _moved(now: Plan, after: Plan, cluster: str) -> str:
    """``+2`` / ``-2`` next to a cluster whose share changes with the failure."""
    delta = after.replicas.get(cluster, 0) - now.replicas.get(cluster, 0)
    return f" ({delta:+d})" if delta else ""


def render_plan(result: ObjectPlan, fail: Sequence[str]) -> str:
    """One object's plan: a line naming it, then a CLUSTER / NOW [/ IF ... FAIL] table."""
    if result.error is not None:
        return f"{result.title}\nerror: {result.error}"
    assert result.now is not None
    replicas = result.total is not None
    header = ["CLUSTER", "NOW"]
    if result.after is not None:
        header.append(f"IF {','.join(fail)} {'FAILS' if len(fail) == 1 else 'FAIL'}")
    rows: list[list[str]] = []
    for cluster in result.clusters:
        row = [cluster, _cell(result.now, cluster, replicas=replicas)]
        if result.after is not None:
            moved = _moved(result.now, result.after, cluster) if replicas else ""
            row.append(_cell(result.after, cluster, replicas=replicas) + moved)
        rows.append(row)
    if replicas:
        row = ["UNPLACED", str(result.now.unschedulable)]
        if result.after is not None:
            row.append(str(result.after.unschedulable))
        rows.append(row)
    if not result.clusters:
        return f"{result.title}\n(no clusters registered)"
    return f"{result.title}\n{table(header, rows)}"


def plan_json(result: ObjectPlan) -> dict[str, Any]:
    """The same for ``-o json``."""

    def one(p: Plan | None) -> dict[str, Any] | None:
        if p is None:
            return None
        return {
            "clusters": dict(p.replicas),
            "unschedulable": p.unschedulable,
            "excluded": dict(p.excluded),
        }

    return {
        "kind": result.kind,
        "namespace": result.namespace,
        "name": result.name,
        "replicas": result.total,
        "exists": result.exists,
        "now": one(result.now),
        "afterFailure": one(result.after),
        "error": result.error,
    }


def render_all(results: Sequence[ObjectPlan], fail: Sequence[str], *, output: str) -> str:
    if output == "json":
        return json.dumps({"failed": list(fail), "objects": [plan_json(r) for r in results]}, indent=2)
    return "\n\n".join(render_plan(r, fail) for r in results)


def unknown_clusters(fail: Sequence[str], clusters: Sequence[Obj]) -> list[str]:
    known = {str((c.get("metadata") or {}).get("name", "")) for c in clusters}
    return [name for name in fail if name not in known]


def placements_wanted(objects: Sequence[Obj], default_namespace: str) -> Mapping[int, tuple[str, str]]:
    """Index of each plannable object -> (namespace, Placement name) to look up."""
    return {
        i: placement_key(obj, default_namespace)
        for i, obj in enumerate(objects)
        if obj.get("kind") in PLANNED_KINDS and (obj.get("metadata") or {}).get("name")
    }


# -- the command ----------------------------------------------------------------------------------------


def _placement(client: FederationClient, namespace: str, name: str) -> Obj | None:
    try:
        return client.get(PLACEMENTS, namespace, name)
    except ApiFailure as err:
        if err.reason == "NotFound":
            return None
        raise


def plan_command(
    ctx: typer.Context,
    filename: Annotated[
        list[str],
        typer.Option(
            "--filename", "-f", help="Manifest file or directory (YAML, JSON; - stdin); repeatable."
        ),
    ],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-R", help="With a directory, its sub-directories too.")
    ] = False,
    fail: Annotated[
        list[str] | None, typer.Option("--fail", help="A cluster to imagine lost (repeatable).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of objects that name none.")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text (default) or json.")] = "text",
) -> None:
    """Show where a manifest's objects would go now, and if --fail clusters were lost.

    Uses the controllers' own division (federation.scheduling.plan) over the clusters as they are
    now (Ready, cordoned, labels) and, for objects that exist, where their replicas run. Changes
    nothing: it only reads. UNPLACED counts replicas no cluster could take.

    Example: fedctl plan -f web.yaml --fail us-central1
    """
    failed = list(dict.fromkeys(fail or []))
    if output not in ("text", "json"):
        raise CliError(f"--output must be text or json, not {output!r}", code=2)
    objects = [document.obj for document in read_manifests(filename, recursive=recursive)]
    default = default_namespace(ctx, namespace)
    wanted = placements_wanted(objects, default)
    for i, obj in enumerate(objects):
        if i not in wanted:
            kind = obj.get("kind") or "an object without a kind"
            name = (obj.get("metadata") or {}).get("name") or "<unnamed>"
            typer.echo(f"skipped: {kind} {name} (the federation places {', '.join(PLANNED_KINDS)})", err=True)
    with client_from_options(ctx) as client:
        clusters = client.list(CLUSTERS, None)
        unknown = unknown_clusters(failed, clusters)
        if unknown:
            known = ", ".join(sorted(str(c["metadata"].get("name")) for c in clusters)) or "none"
            raise CliError(f"--fail {', '.join(unknown)}: no such cluster (clusters: {known})", code=2)
        results = [
            plan_object(
                objects[i],
                clusters,
                placement=_placement(client, *wanted[i]),
                fail=failed,
                default_namespace=default,
            )
            for i in sorted(wanted)
        ]
    typer.echo(render_all(results, failed, output=output))
    if output == "text":
        typer.echo("\n(plan only: nothing was changed)", err=True)
    if any(r.error for r in results):
        raise typer.Exit(1)
