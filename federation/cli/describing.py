"""``fedctl describe``: one object, where the federation placed it, and what happened to it.

Three parts, as ``kubectl describe`` has them, with the federation's own in the middle: the object's
key fields; its Placement per member cluster (state, desired/ready replicas, a Service's regional
address and traffic weight and share, the last error, and the clusters left out and why); and the
object's recent Events (selected by ``involvedObject.uid``, so a deleted-and-recreated namesake's
events are not mixed in). Secret data is never printed, only its keys.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from federation.apimachinery import EVENTS, Obj, ResourceType
from federation.apis import PLACEMENTS, REGION_LABEL, placement_name
from federation.cli.client import (
    ApiFailure,
    FederationClient,
    client_from_options,
    default_namespace,
    resource_type,
)
from federation.cli.eventing import event_rows
from federation.cli.printing import age, plain_table, print_table, state_style
from federation.cli.progress import placement_namespace

RECENT_EVENTS = 20


def _pairs(mapping: dict[str, Any] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((mapping or {}).items())) or "<none>"


def _annotations(mapping: dict[str, Any] | None) -> list[str]:
    if not mapping:
        return ["<none>"]
    return [f"{k}: {' '.join(str(v).split())}" for k, v in sorted(mapping.items())]


def _ports(spec: dict[str, Any]) -> str:
    cells = [
        f"{p.get('name') + ' ' if p.get('name') else ''}{p.get('port')}/{p.get('protocol', 'TCP')}"
        + (f" -> {p['targetPort']}" if p.get("targetPort") else "")
        for p in spec.get("ports") or []
    ]
    return ", ".join(cells) or "<none>"


def key_fields(rt: ResourceType, obj: Obj) -> list[tuple[str, str | list[str]]]:
    """``(label, value)`` lines for the top of the description."""
    metadata, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    fields: list[tuple[str, str | list[str]]] = [("Name", str(metadata.get("name", "")))]
    if rt.namespaced:
        fields.append(("Namespace", str(metadata.get("namespace", ""))))
    created = metadata.get("creationTimestamp")
    fields += [
        ("Kind", f"{rt.kind} ({rt.api_version})"),
        ("Labels", _pairs(metadata.get("labels"))),
        ("Annotations", _annotations(metadata.get("annotations"))),
        ("Created", f"{created} ({age(created)} ago)" if created else "<unknown>"),
    ]
    if metadata.get("deletionTimestamp"):
        fields.append(("Deleting since", str(metadata["deletionTimestamp"])))
    if rt.kind == "ReplicaSet":
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        fields += [
            (
                "Replicas",
                f"{spec.get('replicas', 1)} desired | {status.get('replicas', 0)} current | "
                f"{status.get('readyReplicas', 0)} ready | {status.get('availableReplicas', 0)} available",
            ),
            ("Selector", _pairs((spec.get("selector") or {}).get("matchLabels"))),
            ("Images", ", ".join(str(c.get("image", "")) for c in containers) or "<none>"),
        ]
    elif rt.kind == "Service":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        addresses = [
            str(i.get("ip") or i.get("hostname") or "")
            + "".join(f":{p.get('port')}" for p in (i.get("ports") or [])[:1])
            for i in ingress
        ]
        fields += [
            ("Type", str(spec.get("type", "ClusterIP"))),
            ("Selector", _pairs(spec.get("selector"))),
            ("Ports", _ports(spec)),
            ("Global address", ", ".join(addresses) or "<pending>"),
        ]
    elif rt.kind == "Secret":
        keys = sorted((obj.get("data") or {}).keys())
        fields += [("Type", str(obj.get("type", "Opaque"))), ("Data keys", ", ".join(keys) or "<none>")]
    elif rt.kind == "Namespace":
        fields.append(("Status", str(status.get("phase", "Active"))))
    elif rt.kind == "Cluster":
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        condition = f"{ready.get('status', 'Unknown')} ({ready.get('reason', '')}) {ready.get('message', '')}"
        capacity = status.get("capacity") or {}
        fields += [
            ("Server", str(spec.get("server", ""))),
            ("Region", str((metadata.get("labels") or {}).get(REGION_LABEL, "<none>"))),
            ("Ready", condition.strip()),
            ("Cordoned", "yes" if spec.get("unschedulable") else "no"),
            ("Version", str(status.get("kubernetesVersion", "<unknown>"))),
            ("Capacity", f"{capacity.get('nodes', '?')} nodes, {capacity.get('pods', '?')} pods"),
        ]
    return fields


def placement_table(kind: str, placement: Obj) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, a row per planned cluster, and notes (excluded clusters, unschedulable, plan errors)."""
    spec, status = placement.get("spec") or {}, placement.get("status") or {}
    reported = {str(c.get("name")): c for c in status.get("clusters") or []}
    planned = {str(c.get("name")): c for c in spec.get("clusters") or []}
    names = sorted(set(planned) | set(reported))
    if kind == "ReplicaSet":
        headers = ["CLUSTER", "STATE", "DESIRED", "READY", "AVAILABLE", "LAST ERROR"]
    elif kind == "Service":
        headers = ["CLUSTER", "STATE", "ADDRESS", "WEIGHT", "SHARE", "LAST ERROR"]
    else:
        headers = ["CLUSTER", "STATE", "LAST ERROR"]
    rows = []
    for name in names:
        seen, plan = reported.get(name) or {}, planned.get(name) or {}
        state = str(seen.get("state", "Pending" if name in planned else "Removing"))
        error = str(seen.get("lastError") or "")
        if kind == "ReplicaSet":
            desired = plan.get("replicas", seen.get("desiredReplicas", 0))
            rows.append(
                [
                    name,
                    state,
                    str(desired),
                    str(seen.get("readyReplicas", 0)),
                    str(seen.get("availableReplicas", 0)),
                    error,
                ]
            )
        elif kind == "Service":
            reason = f" ({seen['trafficReason']})" if seen.get("trafficReason") else ""
            rows.append(
                [
                    name,
                    state,
                    str(seen.get("address") or "<pending>"),
                    str(seen.get("trafficWeight", 0)),
                    str(seen.get("trafficShare", "-")) + reason,
                    error,
                ]
            )
        else:
            rows.append([name, state, error])
    notes = [f"excluded {e.get('name')}: {e.get('reason')}" for e in spec.get("excluded") or []]
    if spec.get("unschedulable"):
        notes.append(f"{spec['unschedulable']} replicas fit in no eligible cluster")
    if spec.get("error"):
        notes.append(f"no plan: {spec['error']}")
    return headers, rows, notes


def _section(title: str) -> None:
    typer.secho(f"{title}:", bold=True)


def _find_placement(client: FederationClient, rt: ResourceType, obj: Obj) -> Obj | None:
    if rt is PLACEMENTS:
        return obj
    namespace = placement_namespace(rt, obj)
    if namespace is None:
        return None
    try:
        return client.get(PLACEMENTS, namespace, placement_name(rt.kind, str(obj["metadata"]["name"])))
    except ApiFailure as err:
        if err.code == 404:
            return None
        raise


def describe(
    ctx: typer.Context,
    kind: Annotated[
        str, typer.Argument(help="Kind, plural or short name: rs, svc, ns, secret, cluster, pl...")
    ],
    name: Annotated[str, typer.Argument(help="The object's name.")],
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (else the context's, or default).")
    ] = None,
) -> None:
    """Show an object's key fields, its placement in each member cluster, and its recent events.

    For a Service the placement shows each region's address and its traffic weight and share.

    Example: fedctl describe rs web -n shop
    """
    rt = resource_type(kind)
    ns = default_namespace(ctx, namespace) if rt.namespaced else None
    with client_from_options(ctx) as client:
        obj = client.get(rt, ns, name)
        placement = _find_placement(client, rt, obj)
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        events = client.list(EVENTS, ns, field_selector=f"involvedObject.uid={uid}")
    width = 16
    for label, value in key_fields(rt, obj):
        lines = value if isinstance(value, list) else [value]
        for number, text in enumerate(lines):
            typer.echo(f"{(label + ':') if number == 0 else '':<{width}}{text}")
    typer.echo("")
    if placement is not None:
        resource_kind = str(((placement.get("spec") or {}).get("resource") or {}).get("kind", rt.kind))
        _section(f"Placement ({placement['metadata']['name']})")
        headers, rows, notes = placement_table(resource_kind, placement)
        if rows:
            print_table(headers, rows, indent="  ", styles=[state_style(r[1]) for r in rows])
        else:
            typer.echo("  <no cluster>")
        for note in notes:
            typer.echo(f"  {note}")
        typer.echo("")
    elif placement_namespace(rt, obj) is not None:
        _section("Placement")
        typer.echo("  <none yet>\n")
    _section("Events")
    recent = event_rows(events, all_namespaces=False, with_object=False)[-RECENT_EVENTS:]
    if recent:
        typer.echo(plain_table(["LAST SEEN", "TYPE", "REASON", "FROM", "MESSAGE"], recent, indent="  "))
    else:
        typer.echo("  <none>")
