"""``fedctl apply -f`` and ``fedctl delete``: manifests in, objects in the federation, all or nothing.

Apply runs in two phases so that a bad document never leaves half an app behind:

1. **Validate everything.** Each document is sent to the server as a dry run (``?dryRun=All``): a
   create, or a replace over the existing object's ``resourceVersion`` when it exists. The server
   parses and validates it exactly as it would for real. The first failure is reported as
   ``FILE: document N (line L): <the server's message>`` and nothing at all is written.
2. **Write.** Namespaces first, then Secrets, ReplicaSets, Services and the rest, each created or
   replaced by name, printed as kubectl prints (``replicaset.apps/web created|configured|unchanged``).
   An object the dry run showed would not change is not written.

A replace is the manifest as written (fields it leaves out are removed, as ``kubectl replace``
does), keeping only what the federation itself holds on the object: its finalizers and owners.

An object whose namespace does not exist yet but is created by the same apply is validated in
``default`` (validation comes before the server's namespace check, so the answer is the same; a
name already taken there only shows as AlreadyExists, which is ignored for this purpose).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated

import typer

from federation.apimachinery import Obj, ResourceType
from federation.cli.client import (
    ApiFailure,
    CliError,
    FederationClient,
    client_from_options,
    default_namespace,
    resource_of,
    resource_type,
)
from federation.cli.manifests import Document, read_manifests
from federation.cli.printing import ref
from federation.cli.progress import parse_duration, wait_gone, wait_ready

FilenameOption = Annotated[
    list[str],
    typer.Option(
        "--filename", "-f", help="A manifest file, a directory of them, or - for stdin (repeatable)."
    ),
]
RecursiveOption = Annotated[
    bool, typer.Option("--recursive", "-R", help="Also read the directories inside a directory given.")
]
NamespaceOption = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace for objects that name none (else default)."),
]
TimeoutOption = Annotated[
    str, typer.Option("--timeout", help="How long --wait waits, e.g. 90s, 2m (default 120s).")
]

_ORDER = {"Namespace": 0, "Secret": 1, "ReplicaSet": 2, "Service": 3}
_IGNORED_FIELDS = ("status",)
_KEPT_METADATA = ("finalizers", "ownerReferences")
_IGNORED_METADATA = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp")


@dataclass
class Planned:
    """One document, its kind and namespace, and what the dry run said it would do."""

    doc: Document
    rt: ResourceType
    namespace: str | None
    existing: Obj | None = None
    verdict: str = "created"  # created | configured | unchanged

    @property
    def ref(self) -> str:
        return ref(self.rt, self.doc.name)


def _plan(doc: Document, namespace_option: str | None, fallback: str) -> Planned:
    obj = doc.obj
    rt = resource_of(str(obj["apiVersion"]), str(obj["kind"]))
    if rt is None:
        raise CliError(f'{doc.where}: the federation has no kind "{obj["kind"]}" in {obj["apiVersion"]}')
    if not rt.namespaced:
        return Planned(doc, rt, None)
    own = (obj.get("metadata") or {}).get("namespace")
    if own and namespace_option and own != namespace_option:
        raise CliError(
            f'{doc.where}: the object\'s namespace "{own}" does not match --namespace "{namespace_option}"'
        )
    return Planned(doc, rt, str(own or fallback))


def _fetch(client: FederationClient, planned: Planned) -> Obj | None:
    try:
        return client.get(planned.rt, planned.namespace, planned.doc.name)
    except ApiFailure as err:
        if err.code == 404:
            return None
        raise


def _body(planned: Planned, namespace: str | None, existing: Obj | None) -> Obj:
    body = copy.deepcopy(planned.doc.obj)
    metadata = body.setdefault("metadata", {})
    if namespace is not None:
        metadata["namespace"] = namespace
    if existing is not None:
        current = existing.get("metadata") or {}
        metadata["resourceVersion"] = current.get("resourceVersion")
        for key in _KEPT_METADATA:  # the controllers' (a replace must not drop the propagation finalizer)
            if key in current and key not in metadata:
                metadata[key] = current[key]
    return body


def _comparable(obj: Obj) -> Obj:
    out = {k: v for k, v in obj.items() if k not in _IGNORED_FIELDS}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _IGNORED_METADATA}
    return out


def _dry_run(client: FederationClient, planned: Planned, new_namespaces: set[str]) -> None:
    """Phase 1 for one document: the server validates it; records whether it exists and would change."""
    namespace = planned.namespace
    if namespace is not None and namespace in new_namespaces:
        try:
            client.create(planned.rt, "default", _body(planned, "default", None), dry_run=True)
        except ApiFailure as err:
            if err.reason != "AlreadyExists":
                raise
        return
    planned.existing = _fetch(client, planned)
    body = _body(planned, namespace, planned.existing)
    if planned.existing is None:
        client.create(planned.rt, namespace, body, dry_run=True)
        return
    result = client.replace(planned.rt, namespace, body, dry_run=True)
    unchanged = _comparable(result) == _comparable(planned.existing)
    planned.verdict = "unchanged" if unchanged else "configured"


def validate_all(client: FederationClient, plans: list[Planned]) -> None:
    """Phase 1: every document, or a CliError naming the first bad one (nothing written)."""
    new_namespaces: set[str] = set()
    for planned in sorted(plans, key=lambda p: _ORDER.get(p.rt.kind, len(_ORDER))):
        try:
            _dry_run(client, planned, new_namespaces)
        except ApiFailure as err:
            raise CliError(f"{planned.doc.where}: {err}") from None
        if planned.rt.kind == "Namespace" and planned.existing is None:
            new_namespaces.add(planned.doc.name)


def _write(client: FederationClient, planned: Planned) -> Obj:
    """Phase 2 for one document; a replace that races another writer is tried again on the new version."""
    for attempt in range(3):
        existing = planned.existing if attempt == 0 else _fetch(client, planned)
        body = _body(planned, planned.namespace, existing)
        try:
            if existing is None:
                return client.create(planned.rt, planned.namespace, body)
            return client.replace(planned.rt, planned.namespace, body)
        except ApiFailure as err:
            if err.reason not in ("Conflict", "AlreadyExists") or attempt == 2:
                raise CliError(f"{planned.doc.where}: {err}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def apply(
    ctx: typer.Context,
    filename: FilenameOption,
    recursive: RecursiveOption = False,
    namespace: NamespaceOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Have the server validate everything; write nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Then show each object's placement per cluster until all are ready."),
    ] = False,
    timeout: TimeoutOption = "120s",
) -> None:
    """Create or update objects from YAML or JSON manifests; all are validated before any is written.

    Every document is checked by the server first (a dry run); if one is refused, the error names its
    file, document and line, and nothing is applied. Objects are created or replaced by name.
    With --wait, a per-cluster view follows each object's Placement until every member is ready.

    Example: fedctl apply -f docs/examples/ --wait --timeout 2m
    """
    seconds = parse_duration(timeout)
    documents = read_manifests(filename, recursive=recursive)
    fallback = default_namespace(ctx, namespace)
    plans = [_plan(doc, namespace, fallback) for doc in documents]
    client = client_from_options(ctx)
    with client:
        validate_all(client, plans)
        ordered = sorted(plans, key=lambda p: _ORDER.get(p.rt.kind, len(_ORDER)))
        if dry_run:
            for planned in ordered:
                typer.echo(f"{planned.ref} {planned.verdict} (server dry run)")
            return
        applied: list[tuple[ResourceType, Obj]] = []
        for planned in ordered:
            if planned.verdict == "unchanged" and planned.existing is not None:
                applied.append((planned.rt, planned.existing))
            else:
                applied.append((planned.rt, _write(client, planned)))
            typer.echo(f"{planned.ref} {planned.verdict}")
        if wait:
            wait_ready(client, applied, timeout=seconds)


def _targets(
    ctx: typer.Context, args: list[str], filename: list[str], recursive: bool, namespace: str | None
) -> list[tuple[ResourceType, str | None, str]]:
    if filename and args:
        raise CliError("give either -f FILE or KIND NAME, not both", code=2)
    fallback = default_namespace(ctx, namespace)
    if filename:
        plans = [_plan(doc, namespace, fallback) for doc in read_manifests(filename, recursive=recursive)]
        plans.sort(key=lambda p: -_ORDER.get(p.rt.kind, len(_ORDER)))  # contents before their namespace
        return [(p.rt, p.namespace, p.doc.name) for p in plans]
    if len(args) < 2:
        raise CliError("give KIND NAME... or -f FILE (e.g. fedctl delete rs web -n shop)", code=2)
    rt = resource_type(args[0])
    return [(rt, fallback if rt.namespaced else None, name) for name in args[1:]]


def delete(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None, typer.Argument(metavar="[KIND NAME...]", help="A kind and names, as in kubectl.")
    ] = None,
    filename: Annotated[
        list[str] | None,
        typer.Option("--filename", "-f", help="Delete the objects these manifests name (- for stdin)."),
    ] = None,
    recursive: RecursiveOption = False,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (else the context's, or default).")
    ] = None,
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="An object that does not exist is no error.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until each object is gone (its member copies removed).")
    ] = False,
    timeout: TimeoutOption = "120s",
) -> None:
    """Delete objects by kind and name, or those that manifests name.

    The federation first removes each object's copies from the member clusters, then the object.
    Deleting a namespace deletes everything in it.

    Example: fedctl delete -f docs/examples/   or   fedctl delete rs web -n shop --wait
    """
    seconds = parse_duration(timeout)
    targets = _targets(ctx, list(args or []), list(filename or []), recursive, namespace)
    missing: list[str] = []
    deleted: list[tuple[ResourceType, str | None, str]] = []
    with client_from_options(ctx) as client:
        for rt, ns, name in targets:
            try:
                client.delete(rt, ns, name)
            except ApiFailure as err:
                if err.code != 404:
                    raise
                if not ignore_not_found:
                    missing.append(f"{ref(rt, name)}: not found" + (f" in namespace {ns}" if ns else ""))
                continue
            typer.echo(f"{ref(rt, name)} deleted")
            deleted.append((rt, ns, name))
        if wait and deleted:
            wait_gone(client, deleted, timeout=seconds)
    if missing:
        raise CliError("; ".join(missing))
