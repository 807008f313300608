"""docs/api-reference.md is what ``python -m federation.api.reference`` prints now, from the OpenAPI
documents the server serves, and it covers every kind and operation of the federation API."""

from __future__ import annotations

from pathlib import Path

from federation.api.reference import render
from federation.apimachinery import SchemaSet, Scheme
from federation.apimachinery.openapi import openapi_v3_document
from federation.apis import FEDERATION_KINDS, FEDERATION_SCHEMAS

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-reference.md"


def test_docs_api_reference_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/api-reference.md is stale: run "
        "`.venv/bin/python -m federation.api.reference > docs/api-reference.md`"
    )


def test_every_kind_and_operation_is_on_the_page() -> None:
    page = DOC.read_text()
    scheme = Scheme(FEDERATION_KINDS)
    for group, version in scheme.group_versions():
        doc = openapi_v3_document(scheme, group, version, schemas=SchemaSet(extra=FEDERATION_SCHEMAS))
        for path, item in doc["paths"].items():
            for method in ("get", "put", "post", "delete", "patch"):
                if method in item:
                    assert f"| {method.upper()} | `{path}` |" in page, (method, path)
    for rt in FEDERATION_KINDS:
        assert f"#### {rt.kind}\n" in page, rt.kind
