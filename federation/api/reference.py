"""``docs/api-reference.md``, generated from the API server's OpenAPI document:
``python -m federation.api.reference > docs/api-reference.md``.

The page is built from the very documents the server serves at ``/openapi/v3/<group-version>``
(:func:`~federation.apimachinery.openapi.openapi_v3_document` over the federation's kinds and
schemas), so it cannot describe an API the server does not have: a unit test fails when the committed
page differs from what this prints.
"""

from __future__ import annotations

from typing import Any

from federation.apimachinery import SchemaSet, Scheme, openapi_v3_document
from federation.apis import FEDERATION_KINDS, FEDERATION_SCHEMAS

HEADER = """# API reference

Generated from the federation API server's OpenAPI documents (the ones it serves at
`/openapi/v3/<group-version>`, which `kubectl explain` reads) by
`python -m federation.api.reference > docs/api-reference.md`; `tests/unit/test_api_reference.py`
fails when this page is stale. Behaviour (resource versions, watches, errors, roles) is in
[The federation API](api.md).
"""

METHODS = ("get", "put", "post", "delete", "patch")
SHARED = "io.k8s.apimachinery."
"""Kubernetes' own machinery types (ObjectMeta, Status, ...): named, not described again."""


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _type(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref") or next(
        (s.get("$ref") for s in schema.get("allOf") or [] if isinstance(s, dict) and s.get("$ref")), None
    )
    if ref:
        return str(ref).rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    kind = schema.get("type")
    if kind == "array":
        return "[]" + _type(schema.get("items") or {})
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map[string]" + _type(schema["additionalProperties"])
    if schema.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    return str(kind or "object")


def _operations(doc: dict[str, Any]) -> list[str]:
    rows = ["| Method | Path | Action | Description |", "| --- | --- | --- | --- |"]
    for path, item in sorted(doc["paths"].items()):
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            action = op.get("x-kubernetes-action", "")
            rows.append(f"| {method.upper()} | `{path}` | {action} | {_cell(op.get('description'))} |")
    return [*rows, ""]


def _schemas(doc: dict[str, Any], kinds: list[str]) -> list[str]:
    """The group-version's own types (those beside its kinds' schemas); Kubernetes' types they use
    (PodTemplateSpec, ObjectMeta, ...) are named only: they are as in Kubernetes."""
    every = doc["components"]["schemas"]
    own = {name.rsplit(".", 1)[0] for name in every if name.rsplit(".", 1)[-1] in kinds}
    lines: list[str] = []
    for name, schema in sorted(every.items()):
        if name.rsplit(".", 1)[0] not in own or name.startswith(SHARED) or not schema.get("properties"):
            continue
        short = name.rsplit(".", 1)[-1]
        lines += [f"#### {short}", ""]
        if schema.get("description"):
            lines += [_cell(schema["description"]), ""]
        required = set(schema.get("required") or [])
        lines += ["| Field | Type | Description |", "| --- | --- | --- |"]
        for field, sub in schema["properties"].items():
            mark = " (required)" if field in required else ""
            lines.append(f"| `{field}`{mark} | `{_type(sub)}` | {_cell(sub.get('description'))} |")
        lines.append("")
    return lines


def render() -> str:
    scheme = Scheme(FEDERATION_KINDS)
    schemas = SchemaSet(extra=FEDERATION_SCHEMAS)
    lines = [HEADER]
    for group, version in scheme.group_versions():
        gv = f"{group}/{version}" if group else version
        doc = openapi_v3_document(scheme, group, version, schemas=schemas)
        kinds = sorted(rt.kind for rt in FEDERATION_KINDS if (rt.group, rt.version) == (group, version))
        lines += [f"## {gv}", "", "Kinds: " + ", ".join(kinds) + ".", "", "### Operations", ""]
        lines += _operations(doc)
        described = _schemas(doc, kinds)
        if described:
            lines += ["### Types", "", *described]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
