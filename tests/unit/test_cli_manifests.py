"""Reading manifests: every object with its file, document number and first line; errors name them."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.cli.client import CliError, resource_type
from federation.cli.manifests import parse_text, read_manifests
from federation.cli.progress import parse_duration

NS = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n"


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        (NS.format("a"), [1]),
        ("---\n" + NS.format("a") + "---\n# a comment\n" + NS.format("b"), [2, 8]),
        (NS.format("a") + "---\n---\n" + NS.format("b"), [1, 7]),
        ('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}', [1]),
        (
            '[\n {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},\n\n'
            ' {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}\n]',
            [2, 4],
        ),
    ],
    ids=["one", "leading-separator-and-comment", "empty-document-not-counted", "json", "json-array"],
)
def test_documents_know_their_line(text: str, lines: list[int]) -> None:
    source = "x.json" if text.lstrip().startswith(("{", "[")) else "x.yaml"
    documents = parse_text(source, text)
    assert [d.line for d in documents] == lines
    assert [d.index for d in documents] == list(range(1, len(lines) + 1))


def test_a_list_kind_is_expanded() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- " + NS.format("a").replace("\n", "\n  ")
    assert [d.name for d in parse_text("l.yaml", text)] == ["a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            NS.format("a") + "---\nkind: Namespace\nmetadata: {name: b}\n",
            "x.yaml: document 2 (line 6): apiVersion",
        ),
        (NS.format("a") + "---\napiVersion: v1\nkind: Secret\n", "document 2 (line 6): metadata.name"),
        ("a: [1,\n", "x.yaml: line 2: not valid YAML"),
        ("- 1\n", "document 1 (line 1): not an object"),
    ],
    ids=["no-apiVersion", "no-name", "syntax", "not-a-mapping"],
)
def test_bad_documents_are_named(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_text("x.yaml", text)


def test_a_directory_gives_its_manifests_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(NS.format("b"))
    (tmp_path / "a.json").write_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}')
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yml").write_text(NS.format("c"))
    assert [d.name for d in read_manifests([str(tmp_path)])] == ["a", "b"]
    assert [d.name for d in read_manifests([str(tmp_path)], recursive=True)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("alias", "kind"),
    [
        ("rs", "ReplicaSet"),
        ("replicasets.apps", "ReplicaSet"),
        ("ReplicaSet", "ReplicaSet"),
        ("svc", "Service"),
        ("pl", "Placement"),
        ("clusters", "Cluster"),
        ("ns", "Namespace"),
        ("secret", "Secret"),
        ("ev", "Event"),
    ],
)
def test_kinds_by_the_names_kubectl_accepts(alias: str, kind: str) -> None:
    assert resource_type(alias).kind == kind


def test_an_unknown_kind_is_a_usage_error() -> None:
    with pytest.raises(CliError, match="no resource type") as raised:
        resource_type("deployments")
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "seconds"), [("120s", 120), ("2m", 120), ("1m30s", 90), ("90", 90), ("500ms", 0.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
