"""API errors as Kubernetes reports them, as a small hierarchy keyed by status.

Every failure a client can see is an :class:`ApiError` carrying what a ``metav1.Status`` needs
(code, reason, message, details). Routers and storages raise these; one exception handler turns
them into the JSON body, so every error response of both servers has the same shape.

Callers catch the type they mean (``except NotFound``, ``except (Conflict, AlreadyExists)``) instead
of comparing codes and reasons. Constructing the base class picks the subclass from the reason (then
the code): ``ApiError(404, "NotFound", ...)`` is a :class:`NotFound`, so errors made from a Status
that arrived over the wire (a member cluster's, say) are typed as well. As in Kubernetes,
``AlreadyExists`` and ``Conflict`` are two reasons of 409, and neither is the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Self


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

    CODE: ClassVar[int] = 500
    REASONS: ClassVar[tuple[str, ...]] = ()
    """The Status reasons this class stands for (the first is the one it is made with)."""

    def __new__(cls, code: int = 0, reason: str = "", *args: Any, **kwargs: Any) -> ApiError:
        if cls is ApiError:
            cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or ApiError
        return super().__new__(cls)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @classmethod
    def make(cls, message: str, **details: Any) -> Self:
        """This class's error with its own code and first reason."""
        return cls(cls.CODE, cls.REASONS[0], message, **details)

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


class BadRequest(ApiError):
    CODE, REASONS = 400, ("BadRequest",)


class Unauthorized(ApiError):
    CODE, REASONS = 401, ("Unauthorized",)


class Forbidden(ApiError):
    CODE, REASONS = 403, ("Forbidden",)


class NotFound(ApiError):
    CODE, REASONS = 404, ("NotFound",)


class MethodNotAllowed(ApiError):
    CODE, REASONS = 405, ("MethodNotAllowed",)


class NotAcceptable(ApiError):
    CODE, REASONS = 406, ("NotAcceptable",)


class AlreadyExists(ApiError):
    """409 for a create of a name that is taken."""

    CODE, REASONS = 409, ("AlreadyExists",)


class Conflict(ApiError):
    """409 for a write that lost a race (a stale resourceVersion, a precondition)."""

    CODE, REASONS = 409, ("Conflict",)


class Gone(ApiError):
    """410: a watch or list from a version older than the window."""

    CODE, REASONS = 410, ("Expired", "Gone")


class RequestEntityTooLarge(ApiError):
    CODE, REASONS = 413, ("RequestEntityTooLarge",)


class UnsupportedMediaType(ApiError):
    CODE, REASONS = 415, ("UnsupportedMediaType",)


class Invalid(ApiError):
    """422 with ``causes`` naming each bad field."""

    CODE, REASONS = 422, ("Invalid",)


class TooManyRequests(ApiError):
    CODE, REASONS = 429, ("TooManyRequests",)


class InternalError(ApiError):
    CODE, REASONS = 500, ("InternalError",)


class Unavailable(ApiError):
    """503: the server cannot serve now (its database is unreachable, say); the client retries."""

    CODE, REASONS = 503, ("ServiceUnavailable",)


class Timeout(ApiError):
    """504: the server did not finish in time (``Timeout``) or the call timed out (``ServerTimeout``)."""

    CODE, REASONS = 504, ("Timeout", "ServerTimeout")


_KINDS: tuple[type[ApiError], ...] = (
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    Conflict,
    AlreadyExists,
    Gone,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    Invalid,
    TooManyRequests,
    InternalError,
    Unavailable,
    Timeout,
)
_BY_REASON: dict[str, type[ApiError]] = {reason: k for k in _KINDS for reason in k.REASONS}
_BY_CODE: dict[int, type[ApiError]] = {}
for _kind in _KINDS:  # the first class of a code stands for it when the reason is unknown
    _BY_CODE.setdefault(_kind.CODE, _kind)


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, name: str, group: str = "") -> NotFound:
    return NotFound.make(
        f'{_qualified(plural, group)} "{name}" not found',
        kind=plural,
        name=name,
        group=group or None,
    )


def already_exists(plural: str, name: str, group: str = "") -> AlreadyExists:
    return AlreadyExists.make(
        f'{_qualified(plural, group)} "{name}" already exists',
        kind=plural,
        name=name,
        group=group or None,
    )


def conflict(plural: str, name: str, group: str = "", detail: str | None = None) -> Conflict:
    why = (
        detail
        or "the object has been modified; please apply your changes to the latest version and try again"
    )
    return Conflict.make(
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}',
        kind=plural,
        name=name,
        group=group or None,
    )


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> Invalid:
    summary = "; ".join(f"{c.field}: {c.message}" for c in causes) if causes else "invalid object"
    shown = f'{kind} "{name}"' if name else kind
    return Invalid.make(
        f"{shown} is invalid: {summary}",
        kind=kind,
        name=name or None,
        group=group or None,
        causes=causes,
    )


def bad_request(message: str) -> BadRequest:
    return BadRequest.make(message)


def gone(message: str) -> Gone:
    return Gone.make(message)


def unauthorized() -> Unauthorized:
    return Unauthorized.make("Unauthorized")


def forbidden(message: str) -> Forbidden:
    return Forbidden.make(message)


def method_not_allowed(message: str) -> MethodNotAllowed:
    return MethodNotAllowed.make(message)


def too_large(limit: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge.make(f"the request body is larger than the limit of {limit} bytes")


def unsupported_media_type(content_type: str) -> UnsupportedMediaType:
    return UnsupportedMediaType.make(f'the body of the request was in an unknown format: "{content_type}"')


def internal(message: str) -> InternalError:
    return InternalError.make(message)


def unavailable(message: str, *, retry_after: int = 1) -> Unavailable:
    """503: the server cannot serve now (its database is unreachable, say); the client retries."""
    return Unavailable.make(message, retry_after=retry_after)
