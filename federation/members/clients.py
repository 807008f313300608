"""The synchronous client of one member cluster, through the official ``kubernetes`` client.

DESIGN.md "Propagation": members are reached only through the official client, built from stored
credentials, with a timeout on every call. A :class:`MemberClient` guarantees:

* one ``ApiClient`` and so one urllib3 pool of ``pool_size`` keep-alive connections, reused: every
  response is read whole and released (``_preload_content=False`` bodies parsed with json, then
  ``release_conn``); measured: 200 sequential gets open one TLS connection, not 200;
* every call has (connect, read) timeouts, and ``retries=False``: an outage shows on the first
  attempt, and the caller's queue decides when to retry (STYLE.md "The queue owns retries");
* no urllib3 or kubernetes exception leaves it: failures are translated as ``failures.py`` says,
  messages prefixed ``cluster <name>:``; :meth:`MemberClient.probe` never raises at all;
* the token and keys never reach a log, an error or a repr; a client certificate and key are
  written to a private temporary directory (0700, files 0600) that :meth:`MemberClient.close` (or
  the client's collection) deletes, since urllib3 loads them only from files; the CA goes in as data.

Paths come from :meth:`ResourceType.path`; no generated model classes are used (objects are the
raw JSON the rest of the federation works with). It is thread-safe: ``Member`` calls it from many
threads at once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from federation.apimachinery import ApiError, Listing, Obj, ResourceType
from federation.members.capacity import Capacity, capacity_of
from federation.members.credentials import Credentials
from federation.members.failures import (
    BAD_RESPONSE,
    MemberUnreachable,
    status_error,
    unreachable,
)
from federation.members.streams import WatchStream

USER_AGENT: Final = "federation-members/0.1"
LIST_PAGE: Final = 500
"""Objects per list page (``limit``); a list follows ``continue`` until the end."""

Query = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait on a member: to connect, and for each read of an answer."""

    connect: float = 2.0
    read: float = 5.0


@dataclass(frozen=True)
class ProbeResult:
    """One health probe (``/readyz``, else ``/healthz``)."""

    ok: bool
    reason: str
    """``Ready``; or why not: ``ConnectionRefused``, ``Timeout``, ``TLSError``, ``DNSError``,
    ``ConnectionLost``, ``Unauthorized``, ``Forbidden``, ``Unhealthy`` (another status) ..."""
    message: str
    """One line, without secrets."""
    seconds: float


def _private_file(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Any
    body: bytes


class MemberClient:
    """Synchronous client of one member (see the module docstring)."""

    def __init__(
        self, name: str, credentials: Credentials, *, timeouts: Timeouts = Timeouts(), pool_size: int = 16
    ) -> None:
        self.name = name
        self.server = credentials.server
        self.timeouts = timeouts
        self._closed = False
        self._files: weakref.finalize[Any, Any] | None = None
        config = k8s.Configuration(host=credentials.server)
        if credentials.token:
            config.api_key = {"authorization": f"Bearer {credentials.token}"}
        config.verify_ssl = not credentials.insecure_skip_tls_verify
        if credentials.ca_pem and config.verify_ssl:
            config.ca_cert_data = credentials.ca_pem
        if credentials.client_cert_pem and credentials.client_key_pem:
            directory = tempfile.mkdtemp(prefix="federation-member-")
            self._files = weakref.finalize(self, shutil.rmtree, directory, True)
            config.cert_file = _private_file(directory, "client.crt", credentials.client_cert_pem)
            config.key_file = _private_file(directory, "client.key", credentials.client_key_pem)
        config.retries = False
        config.connection_pool_maxsize = pool_size
        self._api = k8s.ApiClient(config)
        self._api.user_agent = USER_AGENT

    def __repr__(self) -> str:
        return f"MemberClient({self.name!r}, server={self.server!r})"

    # ------------------------------------------------------------------ the wire

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Obj | None = None,
        timeout: float | tuple[float, float] | None = None,
        accept: str = "application/json",
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; the response is not read yet. Transport failures are translated."""
        if self._closed:
            raise MemberUnreachable(
                503, "ServiceUnavailable", f"cluster {self.name}: the client is closed", failure="Closed"
            )
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = "application/json"
        method, url, headers, _, _ = self._api.param_serialize(
            method, path, query_params=list(query or ()), header_params=headers, auth_settings=["BearerToken"]
        )
        limit = timeout if timeout is not None else (self.timeouts.connect, self.timeouts.read)
        try:
            answer = self._api.call_api(method, url, headers, body, None, _request_timeout=limit)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as err:
            raise unreachable(self.name, err, read_timeout=self._read_of(limit)) from err
        response: urllib3.BaseHTTPResponse = answer.response
        return response

    @staticmethod
    def _read_of(limit: float | tuple[float, float]) -> float:
        return limit[1] if isinstance(limit, tuple) else limit

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Obj | None = None,
        timeout: float | tuple[float, float] | None = None,
        accept: str = "application/json",
    ) -> _Answer:
        """One request and its whole answer; the connection goes back to the pool."""
        response = self._send(method, path, query=query, body=body, timeout=timeout, accept=accept)
        try:
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError) as err:
            limit = timeout if timeout is not None else self.timeouts.read
            raise unreachable(self.name, err, read_timeout=self._read_of(limit)) from err
        finally:
            response.release_conn()
        return _Answer(response.status, response.headers, data)

    def _json(self, method: str, path: str, *, query: Query | None = None, body: Obj | None = None) -> Any:
        answer = self._exchange(method, path, query=query, body=body)
        if not 200 <= answer.status < 300:
            raise status_error(self.name, answer.status, answer.body, answer.headers)
        try:
            return json.loads(answer.body)
        except ValueError:
            raise MemberUnreachable(
                503,
                "ServiceUnavailable",
                f"cluster {self.name}: the answer to {method} {path} is not JSON",
                failure=BAD_RESPONSE,
            ) from None

    def _object(self, method: str, path: str, rt: ResourceType, body: Obj | None = None) -> Obj:
        doc = self._json(method, path, body=body)
        if not isinstance(doc, dict):
            raise MemberUnreachable(
                503, "ServiceUnavailable", f"cluster {self.name}: {path} did not answer an object"
            )
        doc.setdefault("apiVersion", rt.api_version)
        doc.setdefault("kind", rt.kind)
        return doc

    # ------------------------------------------------------------------ health and facts

    def probe(self, *, timeout: float) -> ProbeResult:
        """GET ``/readyz`` (on 404 ``/healthz``) within ``timeout`` seconds in all; never raises."""
        started = time.monotonic()

        def result(ok: bool, reason: str, message: str) -> ProbeResult:
            return ProbeResult(ok, reason, message, time.monotonic() - started)

        answer: _Answer | None = None
        for path in ("/readyz", "/healthz"):
            left = max(0.001, timeout - (time.monotonic() - started))
            try:
                answer = self._exchange("GET", path, timeout=left, accept="text/plain, */*")
            except MemberUnreachable as err:
                return result(False, err.failure, err.message)
            except ApiError as err:  # not raised by _exchange; kept total for "never raises"
                return result(False, err.reason, err.message)
            if answer.status != 404:
                break
        assert answer is not None
        if answer.status == 200:
            return result(True, "Ready", f"cluster {self.name}: {path} ok")
        reason = {401: "Unauthorized", 403: "Forbidden"}.get(answer.status, "Unhealthy")
        said = status_error(self.name, answer.status, answer.body, answer.headers).message
        said = said.removeprefix(f"cluster {self.name}: ")
        return result(False, reason, f"cluster {self.name}: {path} answered {answer.status}: {said}")

    def version(self) -> str:
        """The member's ``gitVersion`` (``v1.32.4``)."""
        doc = self._json("GET", "/version")
        return str(doc.get("gitVersion", "")) if isinstance(doc, dict) else ""

    def capacity(self) -> Capacity:
        """Pod capacity from the member's Nodes (see ``capacity.py``)."""
        nodes, _ = self._items("/api/v1/nodes", [])
        return capacity_of(nodes)

    # ------------------------------------------------------------------ objects

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return self._object("GET", rt.path(namespace, name), rt)

    def _items(self, path: str, query: list[tuple[str, str]]) -> tuple[list[Obj], int]:
        items: list[Obj] = []
        version: int | None = None
        token: str | None = None
        while True:
            page = [*query, ("limit", str(LIST_PAGE))]
            if token:
                page.append(("continue", token))
            doc = self._json("GET", path, query=page)
            meta = (doc.get("metadata") if isinstance(doc, dict) else None) or {}
            items.extend(doc.get("items") or [])
            if version is None:
                try:
                    version = int(meta.get("resourceVersion") or 0)
                except (TypeError, ValueError):
                    version = 0
            token = meta.get("continue") or None
            if not token:
                return items, version

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Listing:
        """Every matching object (all pages) and the version a watch resumes from."""
        query: list[tuple[str, str]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        items, version = self._items(rt.path(namespace), query)
        for item in items:
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", rt.kind)
        return Listing(items, version)

    def create(self, rt: ResourceType, namespace: str, obj: Obj) -> Obj:
        body = {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
        return self._object("POST", rt.path(namespace), rt, body)

    def replace(self, rt: ResourceType, namespace: str, name: str, obj: Obj) -> Obj:
        """PUT; ``obj`` carries the ``resourceVersion`` it was read at (stale: ``Conflict``)."""
        body = {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
        return self._object("PUT", rt.path(namespace, name), rt, body)

    def delete(self, rt: ResourceType, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete (``uid``: only that incarnation, else ``Conflict``); a missing object: ``NotFound``."""
        body: Obj | None = None
        if uid is not None:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        self._json("DELETE", rt.path(namespace, name), body=body)

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        since: int,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 60,
    ) -> WatchStream:
        """The changes after ``since``, with bookmarks, until the server ends the stream after
        ``timeout_seconds``; ERROR 410 raises ``Gone``. Opens on the first ``next()``.

        The read timeout is ``timeout_seconds`` plus the read timeout: a server sends bookmarks
        only as its version moves on (the simulator every 5 s then, kube-apiserver about every
        minute), so a quiet, healthy watch may be silent until the server ends it. A black-holed
        member is the health probes' to find; its watch ends at that timeout at the latest, or at
        once on :meth:`WatchStream.stop`."""
        query = [
            ("watch", "true"),
            ("resourceVersion", str(since)),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        read = timeout_seconds + self.timeouts.read
        path = rt.path(namespace)

        def opener() -> urllib3.BaseHTTPResponse:
            response = self._send("GET", path, query=query, timeout=(self.timeouts.connect, read))
            if 200 <= response.status < 300:
                return response
            try:
                body = response.data
            except (urllib3.exceptions.HTTPError, OSError) as err:
                raise unreachable(self.name, err, read_timeout=read) from err
            finally:
                response.release_conn()
            raise status_error(self.name, response.status, body, response.headers)

        return WatchStream(self.name, rt, opener, read_timeout=read)

    def close(self) -> None:
        """Close idle connections and delete the key files; later calls raise MemberUnreachable."""
        if self._closed:
            return
        self._closed = True
        self._api.close()  # type: ignore[no-untyped-call]
        if self._files is not None:
            self._files()
