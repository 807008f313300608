"""Parsing a request body as JSON the way Kubernetes' decoder reads it.

Go's ``encoding/json`` keeps the last of duplicated keys, refuses ``NaN``/``Infinity`` and numbers
out of range (``1e999``), reads an escaped lone surrogate (``"\\ud800"``, which no UTF-8 text can
hold) as U+FFFD, and Kubernetes reports duplicated fields per ``fieldValidation`` like
unknown ones. :func:`parse_json_body` does the same and returns the paths of the duplicates, so the
caller can warn about them or refuse them. Pure.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from federation.apimachinery.errors import bad_request

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""An escaped UTF-16 surrogate: a pair JSON combines, or a lone one to replace."""


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` with each lone surrogate in its texts and keys as U+FFFD (what Go's decoder makes)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_without_lone_surrogates(v) for v in value)
    return value


def parse_json_body(raw: bytes) -> tuple[Any, list[str]]:
    """Parse a request body as JSON; returns the value and the paths of duplicated fields.

    Malformed JSON (or ``NaN``/``Infinity``, or bytes that are not UTF-8) raises ApiError 400. A
    duplicated key keeps its last value, as Go's decoder does; its path (``metadata.name``,
    ``spec.template.spec.containers[0].image``) is reported so the caller can treat it per
    ``fieldValidation`` like an unknown field."""
    seen: list[tuple[dict[str, Any], list[str]]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            counts: dict[str, int] = {}
            dups: list[str] = []
            for k, _ in pairs:
                counts[k] = counts.get(k, 0) + 1
                if counts[k] == 2:
                    dups.append(k)
            seen.append((obj, dups))
        return obj

    def bad_constant(name: str) -> Any:
        raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")

    def finite(text: str) -> float:
        number = float(text)
        if math.isinf(number):  # 1e999: Go's decoder refuses it too, and JSON cannot write it back
            raise ValueError(f"number {text} is out of range")
        return number

    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else str(raw)
        value = json.loads(
            text, object_pairs_hook=pairs_hook, parse_constant=bad_constant, parse_float=finite
        )
    except UnicodeDecodeError as exc:
        raise bad_request(f"the request body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"json parse error: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        ) from None
    except ValueError as exc:
        raise bad_request(f"json parse error: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: only a body with escaped surrogates pays for a walk
        value, found = _without_lone_surrogates((value, _duplicates(value, seen)))
        return value, list(found)
    return value, _duplicates(value, seen)


def _duplicates(value: Any, seen: list[tuple[dict[str, Any], list[str]]]) -> list[str]:
    """The paths of the duplicated keys ``seen`` (objects and their repeated keys) in ``value``."""
    if not seen:
        return []
    wanted = {id(obj): dups for obj, dups in seen}
    found: list[str] = []
    reached: set[int] = set()

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            dups = wanted.get(id(v))
            if dups is not None:
                reached.add(id(v))
                found.extend(f"{path}.{k}" if path else k for k in dups)
            for k, child in v.items():
                walk(child, f"{path}.{k}" if path else k)
        elif isinstance(v, list):
            for i, child in enumerate(v):
                walk(child, f"{path}[{i}]")

    walk(value, "")
    # Objects that were themselves overwritten by a later duplicate are not in the tree any more:
    # report their keys without a path.
    for obj, dups in seen:
        if id(obj) not in reached:
            found.extend(dups)
    return found
