"""Reading manifests for ``fedctl apply -f`` and ``fedctl delete -f``: files, directories, stdin.

Each object read keeps where it came from (file, document number, first line), so that an error
names the exact document the user must fix. YAML files may hold many documents (``---``); JSON files
hold one object, an array of objects, or a ``List`` kind with ``items``. A ``List`` in YAML is
expanded too. Directories give their ``.yaml``, ``.yml`` and ``.json`` files in name order (with
``--recursive``, those of sub-directories too). Nothing here talks to the federation: the only
checks are that each document is an object with ``apiVersion``, ``kind`` and ``metadata.name``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from federation.apimachinery import Obj
from federation.cli.client import CliError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Document:
    """One object of a manifest and where it is."""

    source: str
    """The file as the user named it (``-`` for stdin)."""
    index: int
    """1-based, counting the objects of the file (empty YAML documents are not counted)."""
    line: int
    """1-based line where the object starts."""
    obj: Obj

    @property
    def where(self) -> str:
        """``app.yaml: document 3 (line 21)``."""
        return f"{self.source}: document {self.index} (line {self.line})"

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", ""))


def _files(path: Path, *, recursive: bool) -> list[Path]:
    if path.is_dir():
        pattern = "**/*" if recursive else "*"
        found = [p for p in path.glob(pattern) if p.is_file() and p.suffix in MANIFEST_SUFFIXES]
        if not found:
            raise CliError(f"{path}: no .yaml, .yml or .json files" + ("" if recursive else " (-R?)"))
        return sorted(found)
    if not path.exists():
        raise CliError(f"{path}: no such file or directory")
    return [path]


def _yaml_objects(text: str) -> Iterator[tuple[int, Any]]:
    """``(line, value)`` per non-empty YAML document; the line is where its content starts."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            value = loader.construct_document(node)
            if value is not None:
                yield node.start_mark.line + 1, value
    finally:
        loader.dispose()


def _json_objects(text: str) -> Iterator[tuple[int, Any]]:
    """``(line, value)``: the one object, or each element of a top-level array with its own line."""
    decoder = json.JSONDecoder()

    def skip(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        return at

    def line_at(at: int) -> int:
        return text.count("\n", 0, at) + 1

    at = skip(0)
    if text[at : at + 1] != "[":
        value, end = decoder.raw_decode(text, at)
        if skip(end) != len(text):
            raise json.JSONDecodeError("Extra data", text, skip(end))
        yield line_at(at), value
        return
    at = skip(at + 1)
    if text[at : at + 1] == "]":
        return
    while True:
        value, end = decoder.raw_decode(text, at)
        yield line_at(at), value
        at = skip(end)
        if text[at : at + 1] == ",":
            at = skip(at + 1)
        elif text[at : at + 1] == "]":
            return
        else:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)


def _is_json(source: str, text: str) -> bool:
    if source.endswith(".json"):
        return True
    return source == "-" and text.lstrip()[:1] in ("{", "[")


def _check(doc: Document) -> Document:
    obj = doc.obj
    if not isinstance(obj, dict):
        raise CliError(f"{doc.where}: not an object (a mapping with apiVersion, kind and metadata)")
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise CliError(f"{doc.where}: {key} is missing")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise CliError(f"{doc.where}: metadata.name is missing")
    return doc


def parse_text(source: str, text: str) -> list[Document]:
    """Every object of one file's text (``source`` names it in errors)."""
    documents: list[Document] = []
    try:
        reader = _json_objects if _is_json(source, text) else _yaml_objects
        values = list(reader(text))
    except json.JSONDecodeError as err:
        raise CliError(f"{source}: line {err.lineno}: not valid JSON: {err.msg}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f"line {mark.line + 1}: " if mark else ""
        problem = err.problem or err.context or "not valid YAML"
        raise CliError(f"{source}: {at}not valid YAML: {problem}") from None
    except yaml.YAMLError as err:
        raise CliError(f"{source}: not valid YAML: {err}") from None
    for line, value in values:
        items = (
            value.get("items")
            if isinstance(value, dict) and str(value.get("kind", "")).endswith("List")
            else None
        )
        for item in items if isinstance(items, list) else [value]:
            documents.append(_check(Document(source, len(documents) + 1, line, item)))
    return documents


def read_manifests(paths: Iterable[str], *, recursive: bool = False) -> list[Document]:
    """Every object of every file (``-``: stdin, read once) in order; CliError on the first problem."""
    documents: list[Document] = []
    for named in paths:
        if named == "-":
            documents += parse_text("-", sys.stdin.read())
            continue
        for file in _files(Path(named), recursive=recursive):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise CliError(f"{file}: cannot read: {getattr(err, 'strerror', None) or err}") from None
            documents += parse_text(str(file), text)
    if not documents:
        raise CliError("the files given hold no objects")
    return documents
