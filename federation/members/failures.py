"""Failures of member calls, translated at this boundary into the project's own errors.

Controllers must tell "the member said no" from "the member could not be reached", and must never
see a urllib3 or kubernetes exception (they would have to know the transport to handle it). So
every failure of a call to a member leaves this package as an
:class:`~federation.apimachinery.ApiError`:

* an answer with an error status becomes the matching subclass (``NotFound``, ``Conflict``,
  ``Invalid`` with its causes, ``TooManyRequests`` with its ``retry_after`` ...), its message the
  member's own, prefixed with ``cluster <name>:``; a body that is not a ``metav1.Status`` (a proxy's
  HTML page, say) still gives the class of its code and the first line of the body;
* no answer at all is a :class:`MemberUnreachable` (a 503 ``Unavailable``): refused, DNS, TLS,
  connection lost; its ``failure`` names which (``ConnectionRefused``, ``TLSError`` ...), the same
  words a :class:`~federation.members.ProbeResult` reports;
* a timeout is a :class:`MemberTimeout`: both a ``MemberUnreachable`` and a 504 ``Timeout``, so
  either ``except`` catches it. After a write timed out the write may or may not have happened.

Messages are one line and never carry a credential: they are built from the status, the cluster
name and the kind of failure, never from request headers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

import urllib3
from kubernetes.client.exceptions import ApiException

from federation.apimachinery import ApiError, Cause, Timeout, Unavailable

REFUSED: Final = "ConnectionRefused"
TIMEOUT: Final = "Timeout"
TLS: Final = "TLSError"
DNS: Final = "DNSError"
CONNECTION_FAILED: Final = "ConnectionFailed"
CONNECTION_LOST: Final = "ConnectionLost"
BAD_RESPONSE: Final = "BadResponse"


@dataclass
class MemberUnreachable(Unavailable):
    """No answer from the member at all (refused, DNS, TLS, connection lost, timeout)."""

    failure: str = CONNECTION_FAILED
    """Which: ``ConnectionRefused``, ``Timeout``, ``TLSError``, ``DNSError``, ``ConnectionLost`` ..."""


class MemberTimeout(MemberUnreachable, Timeout):
    """The member did not answer in time (connect or read timeout); also a ``Timeout`` (504)."""

    # errors.py leaves each class's REASONS a fixed-length tuple to mypy, and the two bases
    # differ in length; the value is Timeout's, as a 504 should read.
    CODE, REASONS = Timeout.CODE, Timeout.REASONS  # type: ignore[assignment]


_SSL_DETAIL = re.compile(r"\[SSL(?:: [A-Z_]+)?\] ([^'\"()]+)")


def _tls_detail(text: str) -> str:
    found = _SSL_DETAIL.search(text)
    return found.group(1).strip() if found else "handshake failed"


def _one_line(text: str, limit: int = 200) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def transport_failure(err: BaseException, *, read_timeout: float | None = None) -> tuple[str, str]:
    """(failure, what happened) for an exception that left the member unanswered; ``failure`` is one
    of this module's constants, the text one line without the cluster's name."""
    if isinstance(err, ApiException):  # the REST layer reports TLS failures as status 0
        return TLS, f"TLS handshake failed: {_tls_detail(str(err.reason))}"
    if isinstance(err, urllib3.exceptions.NameResolutionError):
        return DNS, "cannot resolve the server's host name"
    if isinstance(err, urllib3.exceptions.NewConnectionError):  # before ConnectTimeoutError, its base
        if isinstance(err.__context__, ConnectionRefusedError) or "refused" in str(err).lower():
            return REFUSED, "connection refused"
        return CONNECTION_FAILED, "cannot connect"
    if isinstance(err, urllib3.exceptions.ConnectTimeoutError):
        return TIMEOUT, "no connection within the connect timeout"
    if isinstance(err, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        within = f" within {round(read_timeout, 2):g}s" if read_timeout is not None else " in time"
        return TIMEOUT, f"no answer{within}"
    if isinstance(err, urllib3.exceptions.SSLError):
        return TLS, f"TLS failed: {_tls_detail(str(err))}"
    if isinstance(err, urllib3.exceptions.ProtocolError | ConnectionError):
        return CONNECTION_LOST, "connection lost before the answer was complete"
    if isinstance(err, urllib3.exceptions.HTTPError | OSError):
        return CONNECTION_FAILED, f"request failed ({type(err).__name__})"
    return BAD_RESPONSE, f"unreadable answer ({type(err).__name__})"


def unreachable(cluster: str, err: BaseException, *, read_timeout: float | None = None) -> MemberUnreachable:
    """The :class:`MemberUnreachable` (or :class:`MemberTimeout`) for a transport exception."""
    failure, what = transport_failure(err, read_timeout=read_timeout)
    message = f"cluster {cluster}: {what}"
    if failure == TIMEOUT:
        return MemberTimeout(504, "Timeout", message, failure=failure)
    return MemberUnreachable(503, "ServiceUnavailable", message, retry_after=1, failure=failure)


def _reason_for(code: int) -> str:
    probe = ApiError(code, "", "")
    if type(probe) is not ApiError:
        return probe.REASONS[0]
    return "InternalError" if code >= 500 else "Unknown"


def _retry_after(details: dict[str, Any], headers: Any) -> int | None:
    seconds = details.get("retryAfterSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        return seconds
    header = headers.get("Retry-After") if headers is not None else None
    if isinstance(header, str) and header.strip().isdigit():
        return int(header.strip())
    return None


def _causes(details: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for cause in details.get("causes") or []:
        if isinstance(cause, dict):
            causes.append(
                Cause(
                    str(cause.get("field", "")),
                    str(cause.get("message", "")),
                    str(cause.get("reason") or "FieldValueInvalid"),
                )
            )
    return causes


def status_error(cluster: str, code: int, body: bytes, headers: Any = None) -> ApiError:
    """The error for an answer of status ``code`` whose body is ``body`` (normally a Status)."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        return status_object_error(cluster, doc, code=code, headers=headers)
    text = _one_line(body.decode("utf-8", errors="replace")) if body else ""
    shown = f"HTTP {code}: {text}" if text else f"HTTP {code}"
    return ApiError(
        code, _reason_for(code), f"cluster {cluster}: {shown}", retry_after=_retry_after({}, headers)
    )


def status_object_error(
    cluster: str, status: dict[str, Any], *, code: int | None = None, headers: Any = None
) -> ApiError:
    """The error a ``metav1.Status`` stands for (an error answer, or a watch's ERROR event)."""
    details = status.get("details") if isinstance(status.get("details"), dict) else {}
    assert isinstance(details, dict)
    said = status.get("code")
    status_code = code if code is not None else (said if isinstance(said, int) else 500)
    reason = str(status.get("reason") or _reason_for(status_code))
    message = _one_line(str(status.get("message") or reason), limit=1000)
    return ApiError(
        status_code,
        reason,
        f"cluster {cluster}: {message}",
        kind=details.get("kind") if isinstance(details.get("kind"), str) else None,
        name=details.get("name") if isinstance(details.get("name"), str) else None,
        group=details.get("group") if isinstance(details.get("group"), str) else None,
        causes=_causes(details),
        retry_after=_retry_after(details, headers),
    )
