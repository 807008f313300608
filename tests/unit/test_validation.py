"""Metadata validation: Kubernetes' name and label rules, every problem reported with its field."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.apimachinery import validation
from federation.apimachinery.errors import Cause

LABEL = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("web", True),
        ("web-1", True),
        ("a.b.c", True),
        ("Web", False),
        ("-web", False),
        ("web-", False),
        ("a_b", False),
        ("", False),
        ("a" * 253, True),
        ("a" * 254, False),
    ],
    ids=lambda v: str(v)[:20],
)
def test_subdomain_names(name: str, ok: bool) -> None:
    assert (validation.dns1123_subdomain(name, "metadata.name") == []) is ok


@pytest.mark.parametrize(
    ("name", "ok"),
    [("team-a", True), ("a.b", False), ("a" * 63, True), ("a" * 64, False)],
    ids=["plain", "dotted", "63", "64"],
)
def test_label_names(name: str, ok: bool) -> None:
    assert (validation.dns1123_label(name, "metadata.name") == []) is ok


@given(LABEL)
def test_every_rfc1123_label_is_a_valid_name(name: str) -> None:
    assert validation.dns1123_label(name, "f") == []
    assert validation.dns1123_subdomain(name, "f") == []


@given(st.text(min_size=1, max_size=80))
def test_an_invalid_name_is_reported_on_its_field(name: str) -> None:
    causes = validation.dns1123_subdomain(name, "metadata.name")
    assert all(c.field == "metadata.name" for c in causes)


def test_object_meta_reports_every_problem() -> None:
    causes = validation.object_meta(
        {"name": "Bad_Name", "labels": {"ok": "yes", "bad key!": "v", "k": "x" * 64}}
    )
    fields = [c.field for c in causes]
    assert fields.count("metadata.name") == 1
    assert fields.count("metadata.labels") == 2


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("topology.kubernetes.io/region", True),
        ("/x", False),
        ("a/b/c", False),
        ("Bad_Prefix/x", False),
    ],
    ids=["plain", "prefixed", "empty-prefix", "two-slashes", "bad-prefix"],
)
def test_qualified_label_keys(key: str, ok: bool) -> None:
    assert (validation.qualified_name(key, "metadata.labels") == []) is ok


@pytest.mark.parametrize(
    "check",
    [
        lambda: validation.dns1123_subdomain("web\n", "metadata.name"),
        lambda: validation.dns1123_label("web\n", "metadata.name"),
        lambda: validation.qualified_name("app\n", "metadata.labels"),
        lambda: validation.check_labels({"app": "web\n"}, "metadata.labels"),
    ],
    ids=["subdomain", "label", "label-key", "label-value"],
)
def test_a_trailing_newline_is_refused_as_kubernetes_does(check: Callable[[], list[Cause]]) -> None:
    """Python's ``$`` matches before a final newline; Go's, which Kubernetes uses, does not."""
    assert check() != []
