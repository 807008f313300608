"""The running simulator's control API, and the client ``fedctl sim fail/heal/nodes`` uses.

``fedctl sim up`` runs in one process; ``fedctl sim fail`` in another. The first serves a small JSON API
on a loopback port (HTTPS with the simulator's CA, a bearer token of its own) and records where in the
kubeconfig it wrote, as a top-level named extension that kubectl keeps and ignores::

    extensions:
    - name: sim.federation.io/control
      extension:
        server: https://127.0.0.1:PORT
        token: ...
        certificate-authority-data: ...

so whoever holds the kubeconfig (mode 0600) can drive the simulator, and nobody else.

Endpoints (all but ``/healthz`` need the token; errors are ``{"error": "..."}``):

* ``GET /v1/clusters`` -> ``{"clusters": [{name, region, server, nodes, fault, addresses, ...}]}``
* ``POST /v1/clusters/{name}/fail`` with ``{"mode": "down|blackhole|error|slow", "status": 500,
  "retryAfter": 1, "latency": 1.0}``
* ``POST /v1/clusters/{name}/heal``
* ``PUT /v1/clusters/{name}/nodes`` with ``{"count": N}``
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from federation.apimachinery import KubeconfigError, read_kubeconfig
from federation.sim.faults import Fault, Message, Receive, Scope, Send
from federation.sim.listening import Listener, server_config

CONTROL_EXTENSION = "sim.federation.io/control"
MAX_BODY = 64 * 1024


class Controllable(Protocol):
    async def fail(self, name: str, fault: Fault) -> None: ...

    async def heal(self, name: str) -> None: ...

    async def set_nodes(self, name: str, count: int) -> None: ...

    def describe(self) -> list[dict[str, Any]]: ...


class ControlServer:
    def __init__(self, target: Controllable, *, tls: ssl.SSLContext | None) -> None:
        self.target = target
        self.token = secrets.token_urlsafe(32)
        self.listener = Listener(server_config(self._app), tls=tls)

    @property
    def url(self) -> str:
        return self.listener.url

    async def start(self) -> None:
        await self.listener.start()

    async def close(self) -> None:
        await self.listener.close()

    def extension(self, ca_pem: bytes) -> dict[str, str]:
        return {
            "server": self.url,
            "token": self.token,
            "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
        }

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message: Message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _reply(send, 413, {"error": "request body too large"})
                return
            if message.get("type") != "http.request" or not message.get("more_body"):
                break
        code, payload = await self._handle(scope, bytes(body))
        await _reply(send, code, payload)

    def _authorized(self, scope: Scope) -> bool:
        for key, value in scope.get("headers") or []:
            if key.lower() == b"authorization":
                presented = value.decode("latin-1")
                if presented[:7].lower() == "bearer ":
                    return hmac.compare_digest(presented[7:].strip().encode(), self.token.encode())
        return False

    async def _handle(self, scope: Scope, raw: bytes) -> tuple[int, dict[str, Any]]:
        method = str(scope.get("method", "GET"))
        parts = [p for p in str(scope.get("path", "/")).split("/") if p]
        if parts == ["healthz"]:
            return 200, {"status": "ok"}
        if not self._authorized(scope):
            return 401, {"error": "unauthorized: present the token from the kubeconfig extension"}
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 400, {"error": "the body must be JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object"}
        try:
            if parts == ["v1", "clusters"] and method == "GET":
                return 200, {"clusters": self.target.describe()}
            if len(parts) == 4 and parts[:2] == ["v1", "clusters"]:
                name, action = parts[2], parts[3]
                if action == "fail" and method == "POST":
                    await self.target.fail(name, Fault.from_dict(body))
                    return 200, {"cluster": name, "fault": Fault.from_dict(body).describe()}
                if action == "heal" and method == "POST":
                    await self.target.heal(name)
                    return 200, {"cluster": name, "fault": None}
                if action == "nodes" and method == "PUT":
                    count = body.get("count")
                    if not isinstance(count, int) or isinstance(count, bool):
                        return 400, {"error": "count must be an integer"}
                    await self.target.set_nodes(name, count)
                    return 200, {"cluster": name, "nodes": count}
        except LookupError as err:
            return 404, {"error": str(err.args[0] if err.args else err)}
        except (ValueError, TypeError) as err:
            return 400, {"error": str(err)}
        return 404, {"error": f"no such endpoint: {method} /{'/'.join(parts)}"}


async def _reply(send: Send, code: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {"type": "http.response.start", "status": code, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})


class ControlError(RuntimeError):
    """The control API could not be reached or refused the request; the message says why."""


@dataclass(frozen=True)
class ControlClient:
    server: str
    token: str
    ca_pem: bytes | None = None
    timeout: float = 30.0

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ControlClient:
        try:
            config = read_kubeconfig(path)
        except KubeconfigError as err:
            raise ControlError(str(err)) from None
        ext = config.extensions.get(CONTROL_EXTENSION)
        if not isinstance(ext, dict) or not ext.get("server") or not ext.get("token"):
            raise ControlError(
                f"{path} was not written by a running simulator (no {CONTROL_EXTENSION} extension)"
            )
        ca = ext.get("certificate-authority-data")
        return cls(str(ext["server"]), str(ext["token"]), base64.b64decode(ca) if ca else None)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cadata=self.ca_pem.decode()) if self.ca_pem else None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                detail = json.loads(err.read() or b"{}").get("error") or err.reason
            except ValueError:
                detail = err.reason
            finally:
                err.close()
            raise ControlError(str(detail)) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ControlError(
                f"the simulator at {self.server} cannot be reached ({reason}); is it running?"
            ) from None
        return payload if isinstance(payload, dict) else {}

    def clusters(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/clusters").get("clusters") or [])

    def fail(self, cluster: str, fault: Fault) -> dict[str, Any]:
        return self._request("POST", f"/v1/clusters/{cluster}/fail", fault.describe())

    def heal(self, cluster: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/clusters/{cluster}/heal", {})

    def set_nodes(self, cluster: str, count: int) -> dict[str, Any]:
        return self._request("PUT", f"/v1/clusters/{cluster}/nodes", {"count": count})
