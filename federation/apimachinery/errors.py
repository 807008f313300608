"""API errors as Kubernetes reports them.

Every failure a client can see is an :class:`ApiError` carrying what a ``metav1.Status`` needs
(code, reason, message, details). Routers and storages raise these; one exception handler turns
them into the JSON body, so every error response of both servers has the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One ``details.causes[]`` entry: which field is wrong and why."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class ApiError(Exception):
    """An error with a Kubernetes Status reason; ``code`` is the HTTP status."""

    code: int
    reason: str
    message: str
    kind: str | None = None
    name: str | None = None
    group: str | None = None
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group is not None:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(plural, group)} "{name}" not found',
        kind=plural,
        name=name,
        group=group or None,
    )


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(plural, group)} "{name}" already exists',
        kind=plural,
        name=name,
        group=group or None,
    )


def conflict(plural: str, name: str, group: str = "", detail: str | None = None) -> ApiError:
    why = (
        detail
        or "the object has been modified; please apply your changes to the latest version and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}',
        kind=plural,
        name=name,
        group=group or None,
    )


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> ApiError:
    summary = "; ".join(f"{c.field}: {c.message}" for c in causes) if causes else "invalid object"
    shown = f'{kind} "{name}"' if name else kind
    return ApiError(
        422,
        "Invalid",
        f"{shown} is invalid: {summary}",
        kind=kind,
        name=name or None,
        group=group or None,
        causes=causes,
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "RequestEntityTooLarge", f"the request body is larger than the limit of {limit} bytes"
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415, "UnsupportedMediaType", f'the body of the request was in an unknown format: "{content_type}"'
    )


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", message)


def unavailable(message: str, *, retry_after: int = 1) -> ApiError:
    """503: the server cannot serve now (its database is unreachable, say); the client retries."""
    return ApiError(503, "ServiceUnavailable", message, retry_after=retry_after)
