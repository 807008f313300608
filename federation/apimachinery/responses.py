"""What the API server answers: JSON bodies, ``metav1.Status`` errors and warnings, as Kubernetes sends them.

Every answer of the resource paths is built here, so all of them share one encoder
(:func:`~federation.apimachinery.objects.dump_json`), one media type, the ``Warning: 299`` header
kubectl prints, and the ``Retry-After`` header of an error that asks for a retry.

What it guarantees, whatever text a client sent (warnings quote field names from the body):

* a ``Warning`` header is always sendable: its text goes out as UTF-8 bytes, as the Kubernetes
  apiserver sends it, with control characters (a newline could split the response) turned into
  spaces and text that is not Unicode (a lone surrogate) into U+FFFD; like the apiserver's warning
  recorder it holds at most :data:`WARNINGS_MAX_RUNES` characters, each warning cut to
  :data:`WARNING_ITEM_RUNES` once the whole would be longer, repeats dropped;
* an error is always a ``metav1.Status`` whose ``code`` is the HTTP status, even when its message
  quotes text that JSON in UTF-8 cannot hold.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.responses import Response

from federation.apimachinery.errors import ApiError
from federation.apimachinery.objects import dump_json, meta
from federation.apimachinery.resources import Obj, ResourceType

JSON = "application/json"
WARNINGS_MAX_RUNES = 4 * 1024
"""The apiserver's budget for all warnings of one response (``truncateAtTotalRunes``)."""
WARNING_ITEM_RUNES = 256
"""What each warning is cut to when all of them would pass :data:`WARNINGS_MAX_RUNES`."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _header_text(text: str) -> str:
    """``text`` as a header value Starlette can send: UTF-8 bytes (carried in a latin-1 str),
    control characters as spaces, lone surrogates as U+FFFD."""
    return _unicode(_CONTROL.sub(" ", text)).encode("utf-8").decode("latin-1")


def _unicode(text: str) -> str:
    """``text`` with each lone surrogate (which UTF-8 cannot hold) as U+FFFD, as Go decodes it."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _quoted(text: str) -> str:
    """A warning text as an RFC 7234 quoted-string (what Kubernetes sends)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def warning_header(warnings: tuple[str, ...]) -> str | None:
    """The ``Warning`` header of ``warnings`` (None for none), within the apiserver's limits."""
    unique = [w for w in dict.fromkeys(warnings) if w]
    if not unique:
        return None
    if sum(len(w) for w in unique) > WARNINGS_MAX_RUNES:
        unique = [w if len(w) <= WARNING_ITEM_RUNES else w[: WARNING_ITEM_RUNES - 3] + "..." for w in unique]
    kept: list[str] = []
    total = 0
    for w in unique:
        total += len(w)
        if total > WARNINGS_MAX_RUNES:
            break
        kept.append(w)
    return _header_text(", ".join(f"299 - {_quoted(w)}" for w in kept))


def json_response(body: Any, code: int = 200, warnings: tuple[str, ...] = ()) -> Response:
    """``body`` as JSON, with one ``Warning: 299`` per warning."""
    header = warning_header(warnings)
    headers = {"Warning": header} if header is not None else None
    return Response(dump_json(body), status_code=code, media_type=JSON, headers=headers)


def error_response(err: ApiError) -> Response:
    """``err`` as its ``metav1.Status``, with ``Retry-After`` when it names one."""
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else None
    status = err.status()
    try:
        body = dump_json(status)
    except ApiError:  # the message quotes text UTF-8 cannot hold: say it with U+FFFD instead
        body = dump_json(_replace_surrogates(status))
    return Response(body, status_code=err.code, media_type=JSON, headers=headers)


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _unicode(value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


def deleted(rt: ResourceType, obj: Obj) -> Response:
    """The ``Success`` Status of a delete that removed ``obj`` at once."""
    m = meta(obj)
    return json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": m.get("name"), "group": rt.group, "kind": rt.plural, "uid": m.get("uid")},
        }
    )
