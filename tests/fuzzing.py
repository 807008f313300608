"""Fuzzing a running API server with schemathesis, as a client reaches it (issue 9).

:func:`fuzz` takes a server's address, CA and bearer token, and:

1. reads the OpenAPI v3 documents the server serves, as kubectl does (``/openapi/v3``, then each
   group-version's ``serverRelativeURL``), and joins them into one document;
2. seeds what the operations name, so they reach their logic instead of a 404: the namespace
   :data:`NAMESPACE` and, in it (or cluster-wide), one object named :data:`NAME` of every kind
   that can be created, plus a second, :data:`DOOMED`, for the deletes to remove (``fuzz-doomed``
   namespace included), so a delete never takes away what the other operations work on;
3. runs ``st run`` (a subprocess, over HTTPS with the token) for ``seconds`` with ``seed``, with
   the hooks of ``tests/fuzz_hooks.py`` (most cases name the seeded objects; deletes of
   collections take only objects labelled ``fuzz=doomed``; lists are not watches) and the checks:
   no 5xx, every error a ``metav1.Status`` with the HTTP status as ``code``, responses that
   conform to the served schema;
4. returns what was covered (:class:`FuzzResult`), from the calls the hooks logged.

``python -m tests.fuzzing URL CA TOKEN [seconds] [seed]`` runs it against a server already running.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ST = str(Path(sys.executable).with_name("st"))
NAMESPACE = "fuzz"
NAME = "fuzz"
DOOMED = "fuzz-doomed"
DEFAULT_SEED = 20261202
CHECKS = "not_a_server_error,response_schema_conformance,kubernetes_status"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Endpoint:
    """How a client reaches a server: its address, the CA that signed its certificate, a token."""

    url: str
    ca: Path
    token: str

    def client(self) -> httpx.Client:
        return _client(self.url, self.ca, self.token)


def kubeconfig_endpoint(kubeconfig: Path, context: str, ca_file: Path) -> Endpoint:
    """The endpoint of ``context`` in ``kubeconfig`` (a simulated cluster's); its CA goes to ``ca_file``."""
    doc = yaml.safe_load(kubeconfig.read_text())
    ctx = next(c for c in doc["contexts"] if c["name"] == context)["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == ctx["cluster"])["cluster"]
    user = next(u for u in doc["users"] if u["name"] == ctx["user"])["user"]
    ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    return Endpoint(cluster["server"], ca_file, user["token"])


def manifest(kind: str, name: str) -> dict[str, Any]:
    """A valid object of ``kind`` named ``name`` (KeyError for a kind without a seed: add one)."""
    app = {"app": "fuzz"}
    bodies: dict[str, dict[str, Any]] = {
        "namespaces": {},
        "secrets": {"stringData": {"key": "value"}},
        "events": {
            "involvedObject": {"kind": "Namespace", "name": NAMESPACE},
            "reason": "Fuzz",
            "message": "seeded for the fuzz test",
            "type": "Normal",
        },
        "replicasets": {
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": app},
                "template": {
                    "metadata": {"labels": app},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            }
        },
        "clusters": {"spec": {"server": "https://127.0.0.1:1"}},
        "placements": {"spec": {"resource": {"apiVersion": "v1", "kind": "Secret", "name": "fuzz"}}},
        "pods": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}},
        "services": {"spec": {"selector": app, "ports": [{"port": 80}]}},
        "nodes": {},
    }
    labels = {"fuzz": "doomed"} if name == DOOMED else {"fuzz": "seed"}
    return {"metadata": {"name": name, "labels": labels}, **bodies[kind]}


@dataclass
class FuzzResult:
    """What one run covered, counted from the calls the hooks logged (shrinking included)."""

    operations: int
    """Operations in the served documents."""
    covered: set[str] = field(default_factory=set)
    """Operations that were called at least once."""
    calls: Counter[str] = field(default_factory=Counter)
    """Calls per operation (``METHOD /path/{template}``)."""
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)
    """Error answers by status and the start of their message (what refused the cases)."""
    returncode: int = 0
    output: str = ""

    @property
    def cases(self) -> int:
        return sum(self.calls.values())

    def failures(self) -> str:
        """What schemathesis reported as failing (its FAILURES and ERRORS sections, shortened)."""
        start = min(
            (i for i in (self.output.find("= FAILURES ="), self.output.find("= ERRORS =")) if i >= 0),
            default=0,
        )
        end = self.output.find("= SUMMARY =", start)
        return self.output[start : end if end > 0 else None][:12000]

    def summary(self) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        phases = "; ".join(re.findall(r"(?:Examples|Coverage|Fuzzing|Stateful) \(in [0-9.]+s\)", self.output))
        return (
            f"{len(self.covered)}/{self.operations} operations covered, {self.cases} cases, "
            f"{len(self.server_errors)} 5xx (statuses {codes}); {phases}"
        )


def _client(url: str, ca: Path, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=url,
        verify=ssl.create_default_context(cafile=str(ca)),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def served_document(client: httpx.Client) -> dict[str, Any]:
    """The server's OpenAPI v3 documents joined into one (paths and schemas; both are disjoint or
    equal across group-versions, since all come from the same definitions)."""
    index = client.get("/openapi/v3")
    index.raise_for_status()
    merged: dict[str, Any] | None = None
    for entry in index.json()["paths"].values():
        got = client.get(entry["serverRelativeURL"])
        got.raise_for_status()
        doc = got.json()
        if merged is None:
            merged = doc
            continue
        merged["paths"].update(doc["paths"])
        merged["components"]["schemas"].update(doc["components"]["schemas"])
    assert merged is not None, "the server serves no OpenAPI v3 document"
    return merged


def collections(document: dict[str, Any]) -> list[str]:
    """The collection paths that take a create, namespaces first."""
    found = [p for p, item in document["paths"].items() if "post" in item]
    return sorted(found, key=lambda p: (not p.endswith("/namespaces"), p))


def seed(client: httpx.Client, document: dict[str, Any]) -> None:
    """Create :data:`NAME` and :data:`DOOMED` of every kind the document can create (an existing
    one is fine: the seeds of an earlier run)."""
    for path in collections(document):
        plural = path.rsplit("/", 1)[1]
        concrete = path.replace("{namespace}", NAMESPACE)
        for name in (NAME, DOOMED):
            created = client.post(concrete, json=manifest(plural, name))
            assert created.status_code in (201, 409), f"seeding {concrete} {name}: {created.text}"


def fuzz(url: str, ca: Path, token: str, *, workdir: Path, seconds: int, seed_value: int) -> FuzzResult:
    """Seed the server, fuzz it for ``seconds`` (deterministic by ``seed_value``), count the calls."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _client(url, ca, token) as client:
        document = served_document(client)
        seed(client, document)
    schema_file = workdir / "openapi.json"
    schema_file.write_text(json.dumps(document))
    log = workdir / "calls.log"
    log.write_text("")
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
        "FEDERATION_FUZZ_LOG": str(log),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        ST,
        "--no-color",
        "run",
        str(schema_file),
        "--url",
        url,
        "-H",
        f"Authorization: Bearer {token}",
        "--tls-verify",
        str(ca),
        "--max-time",
        str(seconds),
        "--seed",
        str(seed_value),
        "--workers",
        "1",
        "--phases",
        "coverage,fuzzing",
        "--checks",
        CHECKS,
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        "--warnings",
        "off",
    ]
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    documented = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    result = FuzzResult(
        operations=len(documented), returncode=done.returncode, output=done.stdout + done.stderr
    )
    for line in log.read_text(encoding="utf-8").split("\n")[:-1]:
        method, path, status, message = line.split("\t", 3)
        result.messages[f"{status} {message[:60]}"] += 1
        label = f"{method} {path}"
        if label in documented:  # not the other methods the fuzzer tries on the same paths
            result.covered.add(label)
        result.calls[label] += 1
        result.statuses[int(status)] += 1
        if int(status) >= 500:
            result.server_errors.append(label)
    return result


def main() -> None:
    url, ca, token = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    seconds = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    seed_value = int(sys.argv[5]) if len(sys.argv) > 5 else DEFAULT_SEED
    result = fuzz(url, ca, token, workdir=Path("fuzz-run"), seconds=seconds, seed_value=seed_value)
    print(result.output)
    print(result.summary())
    raise SystemExit(1 if result.returncode or result.server_errors else 0)


if __name__ == "__main__":
    main()
