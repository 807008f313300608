"""``meta.k8s.io/v1`` Tables, so ``kubectl get`` prints the columns users know.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io``; each kind's strategy names its
columns after NAME. AGE comes after the kind's standard columns and before its wide ones (priority
1, shown by ``-o wide``), as kubectl's printers put it, unless the kind places :data:`AGE` itself
or shows no age (Events). Each row carries the object's metadata, or the whole object when
``includeObject=Object``.
"""

from __future__ import annotations

from typing import Any

from federation.apimachinery.objects import age, meta
from federation.apimachinery.resources import Column, Obj, ResourceType

NAME = Column("Name", "string", lambda o: meta(o).get("name", ""), "Name of the object")
WIDE_NAME = Column("Name", "string", NAME.cell, NAME.description, priority=1)
AGE = Column("Age", "string", lambda o: age(meta(o).get("creationTimestamp")), "Time since creation")


def columns_of(rt: ResourceType) -> list[Column]:
    """NAME, the kind's columns, and AGE where kubectl shows it."""
    columns = rt.strategy.columns()
    if rt.strategy.show_age and not any(c.name == "Age" for c in columns):
        wide = next((i for i, c in enumerate(columns) if c.priority > 0), len(columns))
        columns = [*columns[:wide], AGE, *columns[wide:]]
    return [NAME, *columns] if rt.strategy.show_name else [*columns, WIDE_NAME]


def _row_object(obj: Obj, include: str | None) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta(obj)}


def table(
    rt: ResourceType, items: list[Obj], *, include: str | None = None, definitions: bool = True
) -> dict[str, Any]:
    columns = columns_of(rt)
    rows = []
    for obj in items:
        row: dict[str, Any] = {"cells": [col.cell(obj) for col in columns]}
        row_object = _row_object(obj, include)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    body: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "rows": rows}
    body["columnDefinitions"] = (
        [
            {
                "name": c.name,
                "type": c.type,
                "format": "name" if c.name == "Name" else "",
                "description": c.description,
                "priority": c.priority,
            }
            for c in columns
        ]
        if definitions
        else []
    )
    return body
