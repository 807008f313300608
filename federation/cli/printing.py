"""How ``fedctl`` prints: tables, objects as YAML or JSON, ages, and kubectl's names for objects.

One rule for everything the client commands show: colour and rich layout only when stdout is a
terminal; otherwise plain columns, three spaces apart as kubectl pads them, stable for grep, scripts
and tests. Tables come from the server's own ``meta.k8s.io/v1`` Table where there is one, so
``fedctl get`` shows what ``kubectl get`` shows.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from federation.apimachinery import Obj, ResourceType, parse_rfc3339


def is_tty() -> bool:
    return sys.stdout.isatty()


def age(timestamp: str | None) -> str:
    """kubectl's short duration since an RFC 3339 time: ``5s``, ``3m``, ``2h``, ``4d``."""
    when = parse_rfc3339(timestamp or "")
    if when is None:
        return "<unknown>"
    seconds = max(0, int((dt.datetime.now(dt.UTC) - when).total_seconds()))
    for limit, unit, size in ((120, "s", 1), (7200, "m", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86400}d"


def cell_text(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "") -> str:
    """Columns padded as kubectl pads them (three spaces apart), no trailing spaces."""
    texts = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in texts) for i in range(len(headers))]
    return "\n".join(
        indent + "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in texts
    )


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    indent: str = "",
    styles: Sequence[str | None] | None = None,
) -> None:
    """A table on stdout: rich (bold header, ``styles`` per row) on a terminal, plain otherwise."""
    if not is_tty():
        print(plain_table(headers, rows, indent=indent), flush=True)
        return
    from rich import box
    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(str(header), overflow="fold")
    for number, row in enumerate(rows):
        table.add_row(*(str(c) for c in row), style=styles[number] if styles else None)
    Console(highlight=False).print(Padding(table, (0, 0, 0, len(indent))))


def state_style(state: str) -> str | None:
    """Colour of a placement state or event type on a terminal."""
    if state in ("Ready", "Normal", "True"):
        return "green"
    if state in ("Progressing", "Pending", "Deleting"):
        return "yellow"
    if state in ("Stale", "Conflict", "Failed", "Warning", "False", "Offline"):
        return "red"
    return None


def dump(value: Any, output: str) -> str:
    """``value`` as ``yaml`` (block style, keys in their order) or ``json`` (two-space indent)."""
    if output == "json":
        return json.dumps(value, indent=2)
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")


def as_list(items: list[Obj]) -> Obj:
    """What ``kubectl get -o yaml`` prints for many objects: a ``v1`` ``List``."""
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def ref(rt: ResourceType, name: str) -> str:
    """kubectl's name of an object in messages: ``replicaset.apps/web``, ``namespace/shop``."""
    kind = f"{rt.singular}.{rt.group}" if rt.group else rt.singular
    return f"{kind}/{name}"
