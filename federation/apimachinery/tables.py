"""``meta.k8s.io/v1`` Tables, so ``kubectl get`` prints the columns users know.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io``; each kind's strategy names its
columns (NAME first and AGE last are added here), and each row carries the object's metadata, or
the whole object when ``includeObject=Object``.
"""

from __future__ import annotations

from typing import Any

from federation.apimachinery.objects import age, meta
from federation.apimachinery.resources import Obj, ResourceType


def _row_object(rt: ResourceType, obj: Obj, include: str | None) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta(obj)}


def table(
    rt: ResourceType, items: list[Obj], *, include: str | None = None, definitions: bool = True
) -> dict[str, Any]:
    columns = rt.strategy.columns()
    rows = []
    for obj in items:
        cells: list[Any] = [meta(obj).get("name", "")]
        cells += [col.cell(obj) for col in columns]
        cells.append(age(meta(obj).get("creationTimestamp")))
        row: dict[str, Any] = {"cells": cells}
        row_object = _row_object(rt, obj, include)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    body: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "rows": rows}
    if definitions:
        body["columnDefinitions"] = (
            [
                {
                    "name": "Name",
                    "type": "string",
                    "format": "name",
                    "description": "Name of the object",
                    "priority": 0,
                }
            ]
            + [
                {
                    "name": c.name,
                    "type": c.type,
                    "format": "",
                    "description": c.description,
                    "priority": c.priority,
                }
                for c in columns
            ]
            + [
                {
                    "name": "Age",
                    "type": "string",
                    "format": "",
                    "description": "Time since creation",
                    "priority": 0,
                }
            ]
        )
    else:
        body["columnDefinitions"] = []
    return body
