"""The pure parts of answering bad input (issue 9): warning headers, decoding nulls and required
fields as Go does, lone surrogates. The servers' answers are in tests/integration/test_api_bad_input.py."""

from __future__ import annotations

from typing import Any

import pytest

from federation.apimachinery.jsonbody import parse_json_body
from federation.apimachinery.responses import WARNING_ITEM_RUNES, WARNINGS_MAX_RUNES, warning_header
from federation.apimachinery.schema import SchemaSet


def _wire(header: str) -> str:
    """The header as the bytes Starlette sends (latin-1 of the str), read back as UTF-8."""
    return header.encode("latin-1").decode("utf-8")


def test_a_warning_header_is_utf8_on_the_wire_without_control_characters() -> None:
    header = warning_header(('unknown field "名\r\nX: 1"', "lone \ud800", 'unknown field "名\r\nX: 1"'))
    assert header is not None
    assert _wire(header) == '299 - "unknown field \\"名  X: 1\\"", 299 - "lone \ufffd"'


def test_warnings_stay_within_the_apiservers_budget() -> None:
    many = tuple(f"w{i} " + "x" * 1000 for i in range(100))
    header = warning_header(many)
    assert header is not None
    parts = header.split(", 299 - ")
    assert 1 < len(parts) < 100
    assert all(len(p) <= WARNING_ITEM_RUNES + 12 for p in parts)
    assert len(header) <= WARNINGS_MAX_RUNES + 12 * len(parts)
    assert warning_header(()) is None
    assert warning_header(("",)) is None


def test_escaped_lone_surrogates_read_as_the_replacement_character() -> None:
    value, duplicates = parse_json_body(b'{"k\\ud800": "\\udfff", "k\\ud800": ["\\ud83d\\ude00"]}')
    assert value == {"k\ufffd": ["\U0001f600"]}
    assert duplicates == ["k\ufffd"]


@pytest.mark.parametrize(
    ("ref", "body", "expected"),
    [
        (
            "io.k8s.api.core.v1.Event",
            {"metadata": {"name": "e"}},
            {"metadata": {"name": "e"}, "involvedObject": {}},
        ),
        (
            "io.k8s.api.core.v1.Namespace",
            {"metadata": {"ownerReferences": [None]}},
            {"metadata": {"ownerReferences": [{"apiVersion": "", "kind": "", "name": "", "uid": ""}]}},
        ),
        (
            "io.k8s.api.apps.v1.ReplicaSet",
            {"spec": {"template": {"spec": {"containers": [None]}}}},
            {"spec": {"selector": {}, "template": {"spec": {"containers": [{"name": ""}]}}}},
        ),
        (
            "io.k8s.api.core.v1.Namespace",
            {"status": {"conditions": [{"type": "A", "status": "True"}, None]}},
            {"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "", "status": ""}]}},
        ),
    ],
    ids=["event-involved-object", "null-owner-reference", "null-container", "null-condition"],
)
def test_decoding_writes_what_go_always_writes(
    ref: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    SchemaSet().decode(body, ref, field_validation="Strict")
    assert body == expected
