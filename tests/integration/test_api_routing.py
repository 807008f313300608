"""The resource paths skip FastAPI's middleware and router (``KubernetesApp``); nothing else changes.

Two servers over memory get the same requests: one as it serves them, one through FastAPI's full
stack (``FastAPI.__call__``, the path every request took before). Their answers must be the same
byte for byte, apart from what is random in a created object (uid, creation time).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI

from federation.apimachinery import CORE_KINDS, MemoryStorage, Principal, SchemaSet, Scheme, build_app
from federation.apimachinery.auth import static_token_authenticator
from federation.apimachinery.server import KubernetesApp

pytestmark = pytest.mark.anyio

TOKEN = "routing-test-token"
RS = "/apis/apps/v1/namespaces/default/replicasets"
Request = tuple[str, str, dict[str, str], bytes]


def _app() -> KubernetesApp:
    app = build_app(
        scheme=Scheme(CORE_KINDS),
        storage=MemoryStorage(),
        schemas=SchemaSet(),
        authenticator=static_token_authenticator(TOKEN, Principal("admin", "admin")),
        version={"major": "1", "minor": "32"},
        title="routing test",
    )
    assert isinstance(app, KubernetesApp)
    return app


def _scope(method: str, target: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    path, _, query = target.partition("?")
    raw = [(b"host", b"test"), (b"authorization", f"Bearer {TOKEN}".encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if body:
        raw.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "https",
        "server": ("127.0.0.1", 6443),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": raw,
        "state": {},
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    status, headers, content = 0, [], b""

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers, content
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        else:
            content += message.get("body", b"")

    await app(scope, receive, send)
    return status, headers, content


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _rs(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }


JSON = {"content-type": "application/json"}
TABLE = {"accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
# (method, path, headers, body), and whether KubernetesApp serves it without FastAPI
REQUESTS: list[tuple[str, Request, bool]] = [
    ("namespace", ("POST", "/api/v1/namespaces", JSON, _json({"metadata": {"name": "default"}})), True),
    ("create", ("POST", RS, JSON, _json(_rs("web"))), True),
    ("create-strict-duplicate", ("POST", RS + "?fieldValidation=Strict", JSON, b'{"a":1,"a":2}'), True),
    ("create-warn", ("POST", RS, JSON, _json({**_rs("warn"), "bogus": 1})), True),
    ("create-exists", ("POST", RS, JSON, _json(_rs("web"))), True),
    ("create-malformed", ("POST", RS, JSON, b'{"metadata": '), True),
    ("create-too-large", ("POST", RS, JSON, b" " * (3 * 1024 * 1024 + 1)), True),
    ("create-wrong-type", ("POST", RS, {"content-type": "text/plain"}, b"x"), True),
    ("get", ("GET", RS + "/web", {}, b""), True),
    ("get-table", ("GET", RS + "/web", TABLE, b""), True),
    ("get-missing", ("GET", RS + "/nope", {}, b""), True),
    ("get-unknown-subresource", ("GET", RS + "/web/bogus", {}, b""), True),
    ("scale", ("GET", RS + "/web/scale", {}, b""), True),
    ("list", ("GET", RS, {}, b""), True),
    ("watch", ("GET", RS + "?watch=true&timeoutSeconds=1", {}, b""), True),
    ("head", ("HEAD", RS + "/web", {}, b""), True),
    ("patch", ("PATCH", RS + "/web", {"content-type": "application/merge-patch+json"}, b'{"spec":{}}'), True),
    ("core-discovery", ("GET", "/api/", {}, b""), True),
    ("core-version", ("GET", "/api/v1", {}, b""), True),
    ("group-discovery-slash", ("GET", "/apis/", {}, b""), True),
    ("group-version", ("GET", "/apis/apps/v1", {}, b""), True),
    ("group-trailing-slash", ("GET", "/apis/apps/", {}, b""), True),
    ("group-post", ("POST", "/apis/apps", JSON, b"{}"), True),
    ("unknown-group", ("GET", "/apis/nope/v1/things", {}, b""), True),
    ("delete", ("DELETE", RS + "/web", {}, b""), True),
    ("group", ("GET", "/apis/apps", {}, b""), False),
    ("options", ("OPTIONS", RS, {}, b""), False),
    ("newline-in-path", ("GET", RS + "/a\nb", {}, b""), False),
    ("healthz", ("GET", "/healthz", {}, b""), False),
    ("api-root", ("GET", "/api", {}, b""), False),
]


def _comparable(content: bytes) -> list[Any]:
    """The body (each line of a watch) without what a create draws at random, nor a Table's ages
    (the two apps answer a moment apart: 0s and 1s across a second's boundary)."""

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in ("uid", "creationTimestamp")}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    def without_age(doc: Any) -> Any:  # a Table's Age is read off the clock when it is asked
        if isinstance(doc, dict) and doc.get("kind") == "Table":
            names = [c.get("name") for c in doc.get("columnDefinitions") or []]
            if "Age" in names:
                for row in doc.get("rows") or []:
                    row["cells"][names.index("Age")] = "<age>"
        return doc

    try:
        return [scrub(without_age(json.loads(line))) for line in content.splitlines()]
    except ValueError:
        return [content]


async def test_resource_paths_answer_as_through_fastapi() -> None:
    direct, stacked = _app(), _app()
    for name, (method, target, headers, body), fast in REQUESTS:
        scope = _scope(method, target, headers, body)
        endpoint, _ = direct._resource_route(scope)
        assert (endpoint is not None) == fast, name
        ours = await _call(direct, dict(scope), body)
        theirs = await _call(lambda s, r, w: FastAPI.__call__(stacked, s, r, w), dict(scope), body)
        assert (ours[0], ours[1]) == (theirs[0], theirs[1]), name
        assert _comparable(ours[2]) == _comparable(theirs[2]), name


async def test_request_metrics_keep_bounded_resource_labels() -> None:
    from federation import metrics

    app = _app()
    await _call(app, _scope("GET", RS + "/web/made-up-subresource", {}, b""), b"")
    resources = {
        sample.labels["resource"]
        for family in metrics.API_REQUESTS_TOTAL.collect()
        for sample in family.samples
        if "resource" in sample.labels
    }
    assert not any("made-up-subresource" in r for r in resources)
    assert "replicasets" in resources
