"""``fedctl get``: list or show objects as kubectl does, from the server's own tables.

The columns come from the federation's ``meta.k8s.io/v1`` Table answer (the same ``kubectl get``
prints), so a kind's columns are defined once, on the server. ``-o wide`` adds the priority-1
columns; ``-A`` adds NAMESPACE in front; ``-o yaml|json`` prints the object, or a ``v1`` ``List``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from federation.cli.client import CliError, client_from_options, default_namespace, resource_type
from federation.cli.printing import as_list, cell_text, dump, print_table

OUTPUTS = ("table", "wide", "yaml", "json")


def table_rows(
    table: dict[str, Any], *, wide: bool, all_namespaces: bool
) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of a server Table: priority-0 columns (all with ``wide``), NAMESPACE first
    with ``all_namespaces`` (from each row's object metadata)."""
    definitions = table.get("columnDefinitions") or []
    keep = [i for i, c in enumerate(definitions) if wide or int(c.get("priority") or 0) == 0]
    headers = [str(definitions[i].get("name", "")).upper() for i in keep]
    rows = []
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        line = [cell_text(cells[i]) if i < len(cells) else "" for i in keep]
        if all_namespaces:
            line.insert(0, str(((row.get("object") or {}).get("metadata") or {}).get("namespace", "")))
        rows.append(line)
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    return headers, rows


def get(
    ctx: typer.Context,
    kind: Annotated[
        str, typer.Argument(help="Kind, plural or short name: rs, svc, ns, secrets, clusters, pl...")
    ],
    name: Annotated[str | None, typer.Argument(help="One object's name (else all).")] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace (else the context's, or default).")
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="List across all namespaces.")
    ] = False,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="Label selector, e.g. app=web,tier!=db.")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table, wide, yaml or json.")] = "table",
) -> None:
    """Show one object or list many, as kubectl get does.

    Example: fedctl get rs -n shop -o wide   or   fedctl get placements -A -l app=web
    """
    if output not in OUTPUTS:
        raise CliError(f'unknown output "{output}": use one of {", ".join(OUTPUTS)}', code=2)
    rt = resource_type(kind)
    if all_namespaces and name is not None:
        raise CliError("a name cannot be given with --all-namespaces", code=2)
    if all_namespaces and namespace is not None:
        raise CliError("give --namespace or --all-namespaces, not both", code=2)
    ns = None if all_namespaces or not rt.namespaced else default_namespace(ctx, namespace)
    with client_from_options(ctx) as client:
        if output in ("yaml", "json"):
            if name is not None:
                value: Any = client.get(rt, ns, name)
            else:
                value = as_list(client.list(rt, ns, label_selector=selector))
            typer.echo(dump(value, output))
            return
        table = client.table(rt, ns, name, label_selector=selector)
    headers, rows = table_rows(table, wide=output == "wide", all_namespaces=all_namespaces and rt.namespaced)
    if not rows:
        where = f" in {ns} namespace" if ns else ""
        print(f"No resources found{where}.", file=sys.stderr)
        return
    print_table(headers, rows)
