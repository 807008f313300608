"""The one error the scheduling package raises for what a user wrote: :class:`PlacementError`.

It exists so that a bad placement annotation reads the same wherever it surfaces (a 422 cause from
the API server, an Event from the scheduling controller, a line from ``fedctl plan``). Guarantees:

* ``str(err)`` is exactly one line, ``<annotation>: <field>: <message>`` (the field is left out
  when the whole annotation is at fault, e.g. invalid JSON), and never echoes more than a short,
  JSON-escaped excerpt of what the user wrote.
* ``err.annotation``, ``err.field`` and ``err.message`` carry the parts, so a caller can build a
  Kubernetes cause (``metadata.annotations[<annotation>]``) without parsing the text.
* It is a :class:`ValueError`: callers that only know "bad input" still catch it.

The JSON helpers here decode an annotation's text and check the JSON types the annotations use,
raising :class:`PlacementError` with the field path as Kubernetes would spell it.
"""

from __future__ import annotations

import json
import re
from typing import Any

INT64_MAX = 2**63 - 1
"""The largest integer an annotation field holds (Kubernetes decodes these fields as int64)."""

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_*-]+\Z")


class PlacementError(ValueError):
    """A placement annotation that cannot be used: which annotation, which field, what is wrong."""

    def __init__(self, annotation: str, field: str, message: str) -> None:
        self.annotation = annotation
        self.field = field
        self.message = message
        where = f"{annotation}: {field}: " if field else f"{annotation}: "
        super().__init__(where + message)


def shown(value: Any, *, limit: int = 60) -> str:
    """A short one-line rendering of a user's value for an error message."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def member(path: str, key: str) -> str:
    """The field path of ``key`` inside the object at ``path``: ``clusters.a``, ``clusters[a.b]``."""
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]" if len(key) <= 60 else f"{path}[{key[:57]}...]"


def decode(annotation: str, text: str) -> Any:
    """The JSON value of an annotation; invalid JSON is a :class:`PlacementError` naming the spot."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PlacementError(
            annotation, "", f"invalid JSON: {err.msg} (line {err.lineno} column {err.colno})"
        ) from None
    except ValueError as err:  # e.g. an integer literal longer than Python's digit limit
        raise PlacementError(annotation, "", f"invalid JSON: {str(err).splitlines()[0]}") from None


def non_negative_int(annotation: str, field: str, value: Any) -> int:
    """``value`` when it is a JSON integer in [0, 2^63-1]; booleans and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PlacementError(annotation, field, "must be a non-negative integer")
    if value > INT64_MAX:
        raise PlacementError(annotation, field, f"must be at most {INT64_MAX}")
    return value


def json_object(annotation: str, field: str, value: Any, *, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``value`` when it is a JSON object whose keys are all in ``allowed`` (a typo is an error,
    not a silently ignored field)."""
    if not isinstance(value, dict):
        raise PlacementError(annotation, field, "must be a JSON object")
    for key in sorted(value):
        if key not in allowed:
            raise PlacementError(
                annotation,
                member(field, key),
                f"unknown field {shown(key)}: expected one of {', '.join(allowed)}",
            )
    return value
