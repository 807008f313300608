"""``fedctl events``: what the federation recorded, oldest first, as ``kubectl get events`` shows it.

The controllers record core/v1 Events on federated objects and Clusters (a cluster going Offline, a
failover, drift corrected, a conflict in a member). This lists them sorted by when they last
happened (``lastTimestamp``, else ``eventTime``, else creation), and with ``--watch`` keeps
printing each new or repeated one as it arrives, resuming the watch where it ended, until Ctrl-C.
"""

from __future__ import annotations

from typing import Annotated

import typer

from federation.apimachinery import EVENTS, Obj
from federation.cli.client import (
    ApiFailure,
    CliError,
    FederationClient,
    client_from_options,
    default_namespace,
)
from federation.cli.printing import age, plain_table, print_table, state_style

WATCH_SECONDS = 300


def _last(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def _seen(event: Obj) -> str:
    count = int(event.get("count") or 1)
    shown = age(_last(event))
    if count > 1:
        shown += f" (x{count} over {age(str(event.get('firstTimestamp') or _last(event)))})"
    return shown


def _object(event: Obj) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def event_row(event: Obj, *, all_namespaces: bool, with_object: bool) -> list[str]:
    """``LAST SEEN, TYPE, REASON, OBJECT|FROM, MESSAGE`` (NAMESPACE first with ``all_namespaces``)."""
    source = (event.get("source") or {}).get("component") or event.get("reportingComponent") or ""
    row = [
        _seen(event),
        str(event.get("type", "")),
        str(event.get("reason", "")),
        _object(event) if with_object else str(source),
        " ".join(str(event.get("message", "")).split()),
    ]
    if all_namespaces:
        row.insert(0, str((event.get("metadata") or {}).get("namespace", "")))
    return row


def event_rows(events: list[Obj], *, all_namespaces: bool, with_object: bool) -> list[list[str]]:
    """The rows of ``events``, oldest first."""
    ordered = sorted(events, key=_last)
    return [event_row(e, all_namespaces=all_namespaces, with_object=with_object) for e in ordered]


HEADERS = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def events(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (else the context's, or default).")
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Events of every namespace.")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option("--watch", "-w", help="After the list, print new events as they come (Ctrl-C ends)."),
    ] = False,
) -> None:
    """List events (cluster transitions, failovers, drift, conflicts), oldest first, as kubectl does.

    Events about Clusters are in the default namespace.

    Example: fedctl events -n shop --watch
    """
    if all_namespaces and namespace is not None:
        raise CliError("give --namespace or --all-namespaces, not both", code=2)
    ns = None if all_namespaces else default_namespace(ctx, namespace)
    headers = ["NAMESPACE", *HEADERS] if all_namespaces else HEADERS
    with client_from_options(ctx) as client:
        items, version = client.list_with_version(EVENTS, ns)
        rows = event_rows(items, all_namespaces=all_namespaces, with_object=True)
        if rows:
            styles = [state_style(r[2 if all_namespaces else 1]) for r in rows]
            print_table(headers, rows, styles=styles)
        elif not watch:
            typer.echo(f"No events found{f' in {ns} namespace' if ns else ''}.", err=True)
        if not watch:
            return
        if not rows:
            typer.echo(plain_table(headers, []))
        _follow(client, ns, version, all_namespaces=all_namespaces)


def _follow(client: FederationClient, ns: str | None, version: str, *, all_namespaces: bool) -> None:
    """Print each ADDED or MODIFIED event; a watch the server ends is resumed from the last version."""
    try:
        while True:
            try:
                for kind, event in client.watch(
                    EVENTS, ns, resource_version=version, timeout_seconds=WATCH_SECONDS
                ):
                    version = str((event.get("metadata") or {}).get("resourceVersion") or version)
                    if kind in ("ADDED", "MODIFIED"):
                        row = event_row(event, all_namespaces=all_namespaces, with_object=True)
                        typer.echo("   ".join(row))
            except ApiFailure as err:
                if err.code != 410:
                    raise
                _, version = client.list_with_version(EVENTS, ns)  # too old: start again from now
    except KeyboardInterrupt:
        return
