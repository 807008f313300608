"""``--wait``: follow applied objects' Placements per cluster until every member is ready.

The federation records, per federated object, a ``federation.io/v1alpha1`` Placement named
``<name>-<kind>`` in the object's namespace (a Namespace's in itself): the plan (``spec.clusters``)
and what each member reports (``status.clusters``). An object is done when its Placement is of this
object (same uid, same replica count) and every planned cluster reports ``Ready`` — for a ReplicaSet
also with its ready replicas equal to its share. Objects the federation never propagates (Clusters,
Placements, anything in ``default``, ``kube-*`` or ``federation-system``) are not waited for.

On a terminal the view is a rich Live table, redrawn in place; elsewhere a plain line per object
whenever what it shows changes, so a log tells the story without repeating itself.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer

from federation.apimachinery import Obj, ResourceType
from federation.apis import PLACEMENTS, placement_name
from federation.cli.client import ApiFailure, CliError, FederationClient
from federation.cli.printing import is_tty, ref, state_style

POLL_SECONDS = 0.5
PROPAGATED_KINDS = frozenset({"Namespace", "Secret", "ReplicaSet", "Service"})
GOOD_STATES = frozenset({"Ready", "Current"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)?")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, None: 1.0}


def parse_duration(text: str) -> float:
    """``120s``, ``2m``, ``1m30s``, ``90`` (seconds) -> seconds; a usage error otherwise."""
    value, at, found = 0.0, 0, False
    text = text.strip()
    while at < len(text):
        match = _DURATION.match(text, at)
        if match is None:
            break
        value += float(match.group(1)) * _UNIT[match.group(2)]
        at, found = match.end(), True
    if not found or at != len(text):
        raise CliError(f'invalid duration "{text}": use e.g. 90s, 2m or 1m30s', code=2)
    return value


@dataclass
class Row:
    cluster: str
    state: str
    desired: str
    ready: str
    note: str = ""


@dataclass
class Progress:
    """Where one object stands: a row per cluster, whether it is done, and if not why."""

    ref: str
    rows: list[Row] = field(default_factory=list)
    done: bool = False
    waiting_for: str = ""

    def line(self) -> str:
        """``replicaset.apps/web: asia-east1=2/2 europe-west1=1/2(Progressing)``."""
        cells = []
        for row in self.rows:
            cell = f"{row.cluster}={row.ready}/{row.desired}" if row.desired else row.cluster
            if row.state not in GOOD_STATES:
                cell += f"({row.state})"
            cells.append(cell)
        tail = "ready" if self.done else "waiting" if self.rows else self.waiting_for
        return f"{self.ref}: {' '.join(cells) or '-'}  [{tail}]"


def placement_namespace(rt: ResourceType, obj: Obj) -> str | None:
    """The namespace of ``obj``'s Placement, or None when the federation does not propagate it."""
    if rt.group not in ("", "apps") or rt.kind not in PROPAGATED_KINDS:
        return None
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("name") if rt.kind == "Namespace" else metadata.get("namespace", ""))
    if namespace in ("default", "federation-system") or namespace.startswith("kube-"):
        return None
    return namespace


def progress_of(label: str, obj: Obj, placement: Obj | None) -> Progress:
    """How far ``obj`` is, from its Placement (None: not written yet)."""
    progress = Progress(label)
    if placement is None:
        progress.waiting_for = "no placement yet"
        return progress
    spec, status = placement.get("spec") or {}, placement.get("status") or {}
    uid = (obj.get("metadata") or {}).get("uid")
    wants = (obj.get("spec") or {}).get("replicas") if obj.get("kind") == "ReplicaSet" else None
    if (spec.get("resource") or {}).get("uid") not in (None, uid) or (
        wants is not None and spec.get("replicas") != wants
    ):
        progress.waiting_for = "placement not updated yet"
        return progress
    reported = {str(c.get("name")): c for c in status.get("clusters") or []}
    missing: list[str] = []
    for planned in spec.get("clusters") or []:
        name = str(planned.get("name"))
        seen = reported.get(name) or {}
        state = str(seen.get("state", "Pending"))
        share = planned.get("replicas")
        ready = seen.get("readyReplicas", 0)
        good = state in GOOD_STATES and (
            share is None or (ready == share and seen.get("desiredReplicas", share) == share)
        )
        desired = "" if share is None else str(share)
        progress.rows.append(
            Row(name, state, desired, "" if share is None else str(ready), str(seen.get("lastError") or ""))
        )
        if not good:
            missing.append(
                f"{name} {progress.rows[-1].ready + '/' + desired + ' ' if desired else ''}{state}".strip()
            )
    excluded = ", ".join(f"{e.get('name')} {e.get('reason')}" for e in spec.get("excluded") or [])
    if spec.get("error"):
        progress.waiting_for = str(spec["error"])
    elif not progress.rows:
        progress.waiting_for = "no eligible cluster" + (f" ({excluded})" if excluded else "")
    elif missing:
        progress.waiting_for = ", ".join(missing)
    else:
        progress.done = True
    return progress


def _render(progresses: list[Progress], elapsed: float) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("OBJECT", "CLUSTER", "STATE", "READY", "DESIRED", "LAST ERROR"):
        table.add_column(header)
    for progress in progresses:
        if not progress.rows:
            table.add_row(progress.ref, "-", progress.waiting_for, "", "", "", style="yellow")
        for number, row in enumerate(progress.rows):
            shown = progress.ref if number == 0 else ""
            table.add_row(
                shown, row.cluster, row.state, row.ready, row.desired, row.note, style=state_style(row.state)
            )
    done = sum(p.done for p in progresses)
    return Group(table, Text(f"{done}/{len(progresses)} ready after {elapsed:.0f}s", style="dim"))


def _follow(check: Callable[[], list[Progress]], *, timeout: float, what: str) -> None:
    started = time.monotonic()
    live = None
    if is_tty():
        from rich.live import Live

        live = Live(refresh_per_second=4, transient=False)
        live.start()
    shown: dict[str, str] = {}
    try:
        while True:
            progresses = check()
            elapsed = time.monotonic() - started
            if live is not None:
                live.update(_render(progresses, elapsed))
            else:
                for progress in progresses:
                    line = progress.line()
                    if shown.get(progress.ref) != line:
                        typer.echo(f"{elapsed:5.1f}s  {line}")
                        shown[progress.ref] = line
            pending = [p for p in progresses if not p.done]
            if not pending:
                return
            if elapsed >= timeout:
                left = "; ".join(f"{p.ref} ({p.waiting_for})" for p in pending)
                raise CliError(f"timed out after {timeout:g}s {what}: {left}")
            time.sleep(POLL_SECONDS)
    finally:
        if live is not None:
            live.stop()


def _placement(client: FederationClient, namespace: str, kind: str, name: str) -> Obj | None:
    try:
        return client.get(PLACEMENTS, namespace, placement_name(kind, name))
    except ApiFailure as err:
        if err.code == 404:
            return None
        raise


def wait_ready(client: FederationClient, applied: list[tuple[ResourceType, Obj]], *, timeout: float) -> None:
    """Show each applied object's placement per cluster until all are ready; CliError at the timeout."""
    targets = [(rt, obj, ns) for rt, obj in applied if (ns := placement_namespace(rt, obj)) is not None]
    if not targets:
        typer.echo("nothing to wait for: none of these objects is propagated to member clusters")
        return

    def check() -> list[Progress]:
        out = []
        for rt, obj, ns in targets:
            name = str(obj["metadata"]["name"])
            out.append(progress_of(ref(rt, name), obj, _placement(client, ns, rt.kind, name)))
        return out

    _follow(check, timeout=timeout, what="waiting for the members")
    typer.echo(f"all {len(targets)} objects ready in their clusters")


def wait_gone(
    client: FederationClient, deleted: list[tuple[ResourceType, str | None, str]], *, timeout: float
) -> None:
    """Until every deleted object is gone (its finalizer done: member copies removed)."""

    def check() -> list[Progress]:
        out = []
        for rt, ns, name in deleted:
            try:
                client.get(rt, ns, name)
            except ApiFailure as err:
                if err.code == 404:
                    out.append(Progress(ref(rt, name), done=True))
                    continue
                raise
            out.append(Progress(ref(rt, name), waiting_for="removing member copies"))
        return out

    _follow(check, timeout=timeout, what="waiting for the deletions")
    typer.echo(f"all {len(deleted)} objects gone")
