"""What the API server answers: JSON bodies, ``metav1.Status`` errors and warnings, as Kubernetes sends them.

Every answer of the resource paths is built here, so all of them share one encoder
(:func:`~federation.apimachinery.objects.dump_json`), one media type, the ``Warning: 299`` header
kubectl prints, and the ``Retry-After`` header of an error that asks for a retry.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from federation.apimachinery.errors import ApiError
from federation.apimachinery.objects import dump_json, meta
from federation.apimachinery.resources import Obj, ResourceType

JSON = "application/json"


def _quoted(text: str) -> str:
    """A warning text as an RFC 7234 quoted-string (what Kubernetes sends)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def json_response(body: Any, code: int = 200, warnings: tuple[str, ...] = ()) -> Response:
    """``body`` as JSON, with one ``Warning: 299`` per warning."""
    headers = {"Warning": ", ".join(f'299 - "{_quoted(w)}"' for w in warnings)} if warnings else None
    return Response(dump_json(body), status_code=code, media_type=JSON, headers=headers)


def error_response(err: ApiError) -> Response:
    """``err`` as its ``metav1.Status``, with ``Retry-After`` when it names one."""
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else None
    return Response(dump_json(err.status()), status_code=err.code, media_type=JSON, headers=headers)


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
