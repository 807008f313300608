"""``fedctl cluster``: join, list, show, cordon and unjoin member clusters.

Why it exists: registering a member by hand takes a Secret built from pieces of a kubeconfig and a
Cluster naming it (docs/federation.md shows the kubectl way); ``join`` does it from the member's
kubeconfig in one step, and first checks that the member answers with those credentials, so a
typo is a refusal with the reason, not an Offline cluster found later. The pure parts (kubeconfig
reading, the objects, the rows) are :mod:`federation.cli.registering`.

The federation is reached through its REST API only (:mod:`federation.cli.client`); a member is
reached through ``federation.members`` (the official client, as the controllers reach it): to probe
it and read its nodes' region on ``join``, and on ``unjoin`` to remove what the federation made
there. A token or key is never printed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from federation.apimachinery import NAMESPACES, REPLICASETS, SECRETS, SERVICES, ApiError, Obj
from federation.apis import CLUSTERS, MANAGED_BY_LABEL, REGION_LABEL, SYSTEM_NAMESPACE
from federation.cli.client import ApiFailure, CliError, FederationClient, client_from_options
from federation.cli.registering import (
    CLUSTER_COLUMNS,
    JoinError,
    cluster_row,
    member_credentials,
    parse_labels,
    region_from_nodes,
    registration,
    secret_name,
    table,
)

if TYPE_CHECKING:  # the official client loads only when a member is reached (fedctl starts fast)
    from federation.members import Credentials, MemberClient

app = typer.Typer(help="Join, list, cordon and unjoin member clusters.", no_args_is_help=True)

PROBE_TIMEOUT = 3.0
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}=federation"
MEMBER_KINDS = (REPLICASETS, SERVICES, SECRETS, NAMESPACES)
"""What the federation makes in a member, removed in this order (namespaces last)."""

NameArgument = Annotated[str, typer.Argument(help="The cluster's name in the federation.")]


def _say(text: str) -> None:
    typer.echo(text, err=True)


def _missing(err: ApiFailure) -> bool:
    return err.reason == "NotFound"


def _get_or_none(client: FederationClient, get: Callable[[], Obj]) -> Obj | None:
    try:
        return get()
    except ApiFailure as err:
        if _missing(err):
            return None
        raise


def _member(name: str, credentials: Credentials) -> MemberClient:
    from federation.members import MemberClient, Timeouts

    return MemberClient(name, credentials, timeouts=Timeouts(connect=PROBE_TIMEOUT, read=PROBE_TIMEOUT))


def _region(member: MemberClient) -> tuple[str | None, str]:
    try:
        regions = member.capacity().regions
    except ApiError as err:
        return None, f"region: none (could not list the member's nodes: {err.message})"
    return region_from_nodes(regions)


@app.command()
def join(
    ctx: typer.Context,
    name: NameArgument,
    cluster_kubeconfig: Annotated[
        Path, typer.Option("--cluster-kubeconfig", help="The member's kubeconfig (its credentials).")
    ],
    cluster_context: Annotated[
        str | None, typer.Option("--cluster-context", help="Context in it (else its current-context).")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="A label k=v for the Cluster (repeatable)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Register even if the member does not answer now.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace the server, credentials and labels of a joined cluster."),
    ] = False,
) -> None:
    """Register a member cluster from its kubeconfig.

    Reads the context's server and credentials (token, client certificate, CA or
    insecure-skip-tls-verify), checks the member answers with them (--force: register anyway),
    stores them as the Secret federation-system/NAME-credentials and creates the Cluster. The
    region label comes from --label topology.kubernetes.io/region=R, else from the member's nodes.
    A joined cluster is refused unless --overwrite (which keeps its cordon).

    Example: fedctl cluster join us-central1 --cluster-kubeconfig sim.kubeconfig --cluster-context us-central1
    """
    try:
        labels = parse_labels(label or [])
    except JoinError as err:
        raise CliError(str(err), code=2) from None
    try:
        _, credentials = member_credentials(cluster_kubeconfig, cluster_context)
    except JoinError as err:
        raise CliError(str(err)) from None
    with client_from_options(ctx) as client:
        existing = _get_or_none(client, lambda: client.get(CLUSTERS, None, name))
        if existing is not None and not overwrite:
            server = (existing.get("spec") or {}).get("server", "")
            raise CliError(
                f'cluster "{name}" is already joined (server {server}); pass --overwrite to replace '
                "its server, credentials and labels, or unjoin it first"
            )
        member = _member(name, credentials)
        try:
            probe = member.probe(timeout=PROBE_TIMEOUT)
            if not probe.ok:
                reason = probe.message.removeprefix(f"cluster {name}: ")
                if not force:
                    raise CliError(
                        f"cluster {name} at {credentials.server} does not answer: {reason} "
                        "(--force registers it anyway)"
                    )
                _say(f"warning: cluster {name} at {credentials.server} does not answer: {reason}")
            if REGION_LABEL in labels:
                said = f"region {labels[REGION_LABEL]} (from --label)"
            elif probe.ok:
                region, said = _region(member)
                if region is not None:
                    labels[REGION_LABEL] = region
            else:
                said = "region: none (the member did not answer); set it with --label"
        finally:
            member.close()
        secret, cluster = registration(name, credentials, labels)
        _store_secret(client, secret, overwrite=overwrite)
        if existing is None:
            client.create(CLUSTERS, None, cluster)
        else:
            spec = dict(cluster["spec"])
            if (existing.get("spec") or {}).get("unschedulable"):
                spec["unschedulable"] = True
            meta = dict(existing.get("metadata") or {})
            meta["labels"] = {**(meta.get("labels") or {}), **labels}
            client.replace(CLUSTERS, None, {**existing, "metadata": meta, "spec": spec})
    verb = "joined" if existing is None else "updated"
    typer.echo(f'cluster "{name}" {verb}: {credentials.server} with {credentials.describe()}; {said}')


def _store_secret(client: FederationClient, secret: Obj, *, overwrite: bool) -> None:
    name = secret["metadata"]["name"]
    old = _get_or_none(client, lambda: client.get(SECRETS, SYSTEM_NAMESPACE, name))
    if old is None:
        client.create(SECRETS, SYSTEM_NAMESPACE, secret)
    elif overwrite:
        version = (old.get("metadata") or {}).get("resourceVersion")
        client.replace(
            SECRETS,
            SYSTEM_NAMESPACE,
            {**secret, "metadata": {**secret["metadata"], "resourceVersion": version}},
        )
    else:
        raise CliError(
            f"Secret {SYSTEM_NAMESPACE}/{name} exists already (left by an earlier join?); "
            "pass --overwrite to replace it"
        )


def _dump(obj: Any, output: str) -> str:
    if output == "json":
        return json.dumps(obj, indent=2)
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip("\n")


OutputOption = Annotated[str, typer.Option("--output", "-o", help="table (default), yaml or json.")]


def _check_output(output: str) -> None:
    if output not in ("table", "yaml", "json"):
        raise CliError(f"--output must be table, yaml or json, not {output!r}", code=2)


@app.command("list")
def list_clusters(ctx: typer.Context, output: OutputOption = "table") -> None:
    """List member clusters: NAME REGION STATUS VERSION NODES AGE.

    STATUS is Ready, Offline (reason) or Unknown, with ,SchedulingDisabled when cordoned.

    Example: fedctl cluster list
    """
    _check_output(output)
    with client_from_options(ctx) as client:
        clusters = sorted(client.list(CLUSTERS, None), key=lambda c: str(c["metadata"].get("name")))
    if output != "table":
        typer.echo(_dump({"apiVersion": "v1", "kind": "List", "items": clusters}, output))
    elif not clusters:
        _say("No clusters joined (fedctl cluster join NAME --cluster-kubeconfig FILE).")
    else:
        typer.echo(table(CLUSTER_COLUMNS, [cluster_row(c) for c in clusters]))


@app.command("get")
def get_cluster(ctx: typer.Context, name: NameArgument, output: OutputOption = "table") -> None:
    """Show one member cluster (-o yaml or json: the whole object).

    Example: fedctl cluster get us-central1 -o yaml
    """
    _check_output(output)
    with client_from_options(ctx) as client:
        cluster = client.get(CLUSTERS, None, name)
    if output == "table":
        typer.echo(table(CLUSTER_COLUMNS, [cluster_row(cluster)]))
    else:
        typer.echo(_dump(cluster, output))


def _set_cordon(ctx: typer.Context, name: str, cordoned: bool) -> None:
    with client_from_options(ctx) as client:
        current = client.get(CLUSTERS, None, name)
        was = bool((current.get("spec") or {}).get("unschedulable"))
        if was != cordoned:
            client.request(
                "PATCH",
                CLUSTERS.path(None, name),
                body={"spec": {"unschedulable": cordoned}},
                content_type="application/merge-patch+json",
            )
    word = "cordoned" if cordoned else "uncordoned"
    typer.echo(f'cluster "{name}" {word}' if was != cordoned else f'cluster "{name}" already {word}')


@app.command()
def cordon(ctx: typer.Context, name: NameArgument) -> None:
    """Place no new replicas in a cluster (spec.unschedulable); its traffic weight becomes 0.

    What it runs stays there, except for ReplicaSets with "rebalance": true, whose replicas move to
    the other clusters, make-before-break (a drain: see docs/howto-drain.md).

    Example: fedctl cluster cordon us-central1
    """
    _set_cordon(ctx, name, True)


@app.command()
def uncordon(ctx: typer.Context, name: NameArgument) -> None:
    """Let the federation place replicas in a cluster again.

    Example: fedctl cluster uncordon us-central1
    """
    _set_cordon(ctx, name, False)


def _remove_from_member(member: MemberClient) -> dict[str, int]:
    """Delete every object carrying the federation's managed-by label; counts by kind. A second
    pass a second later removes a copy that a propagation already in flight when the Cluster was
    deleted wrote after the first."""
    removed: dict[str, int] = {}
    for attempt in range(2):
        if attempt:
            time.sleep(1.0)
        _remove_pass(member, removed)
    return removed


def _remove_pass(member: MemberClient, removed: dict[str, int]) -> None:
    for rt in MEMBER_KINDS:
        for obj in member.list(rt, None, label_selector=MANAGED_SELECTOR).items:
            m = obj.get("metadata") or {}
            try:
                member.delete(rt, str(m.get("namespace") or ""), str(m.get("name")), uid=m.get("uid"))
            except ApiError as err:
                if err.code != 404:
                    raise
                continue
            removed[rt.plural] = removed.get(rt.plural, 0) + 1


def _ask_removal(name: str) -> bool:
    if not sys.stdin.isatty():
        raise CliError(
            f"unjoin {name}: remove the federated objects from the member too? Not a terminal to ask "
            "on: pass --yes (remove them) or --keep-member-objects",
            code=2,
        )
    return typer.confirm(f"Remove the objects the federation made in cluster {name} from it?", default=False)


@app.command()
def unjoin(
    ctx: typer.Context,
    name: NameArgument,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask: remove the federated objects from the member.")
    ] = False,
    keep: Annotated[
        bool,
        typer.Option("--keep-member-objects", help="Do not ask: leave the member's copies where they are."),
    ] = False,
) -> None:
    """Remove a member cluster from the federation, and its credentials Secret.

    Asks whether to also delete, in the member, what the federation made there (objects labelled
    federation.io/managed-by=federation); --yes does, --keep-member-objects does not. The Cluster goes
    first, so the controllers stop writing to the member; its replicas are placed on the others.

    Example: fedctl cluster unjoin us-central1 --yes
    """
    if yes and keep:
        raise CliError("--yes and --keep-member-objects contradict each other", code=2)
    with client_from_options(ctx) as client:
        cluster = client.get(CLUSTERS, None, name)
        ref = ((cluster.get("spec") or {}).get("secretRef") or {}).get("name") or secret_name(name)
        secret = _get_or_none(client, lambda: client.get(SECRETS, SYSTEM_NAMESPACE, ref))
        remove = yes or (not keep and _ask_removal(name))
        credentials: Credentials | None = None
        if remove:
            from federation.members import CredentialsError, credentials_from_secret

            try:
                credentials = credentials_from_secret(cluster, secret)
            except CredentialsError as err:
                raise CliError(f"cannot reach cluster {name} to remove its objects: {err}") from None
        client.delete(CLUSTERS, None, name)
        _wait_gone(client, name)
        if credentials is not None:
            member = _member(name, credentials)
            try:
                removed = _remove_from_member(member)
            except ApiError as err:
                raise CliError(
                    f'cluster "{name}" left the federation, but removing its objects failed: {err.message} '
                    f"(the Secret {SYSTEM_NAMESPACE}/{ref} is kept for a retry with the member's kubeconfig)"
                ) from None
            finally:
                member.close()
            counts = ", ".join(f"{n} {kind}" for kind, n in removed.items()) or "nothing"
            said = f"removed from the member: {counts}"
        else:
            said = "the member keeps its copies of the federated objects"
        if secret is not None:
            try:
                client.delete(SECRETS, SYSTEM_NAMESPACE, ref)
            except ApiFailure as err:
                if not _missing(err):
                    raise
    typer.echo(f'cluster "{name}" unjoined; {said}')


def _wait_gone(client: FederationClient, name: str, *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while _get_or_none(client, lambda: client.get(CLUSTERS, None, name)) is not None:
        if time.monotonic() > deadline:
            raise CliError(f'cluster "{name}" is still there {within:g}s after its deletion')
        time.sleep(0.1)
