"""Kubeconfig files: how kubectl, the official client and ``fedctl`` find a server and prove who they are.

The federation API server writes ``DIR/federation.kubeconfig``; the member-cluster simulator writes one
file with a context per simulated cluster (context name = cluster name). Both use the shape kubectl
itself writes: ``clusters`` (server + base64 CA), ``users`` (bearer token), ``contexts`` joining them,
``current-context``, and top-level named ``extensions`` for data of our own (kubectl keeps and ignores
them, as it does for minikube's).

Guarantees: files are written atomically with mode 0600 from the first byte (they hold tokens); what
:func:`write_kubeconfig` writes, :func:`read_kubeconfig` reads back equal; reading resolves each context
to its cluster and user and accepts CA files and token files as kubectl does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from federation.apimachinery.files import write_atomically


class KubeconfigError(ValueError):
    """A kubeconfig that cannot be read or lacks what was asked for."""


@dataclass(frozen=True)
class KubeContext:
    """One context resolved to what a client needs: where, whom to trust, and as whom."""

    name: str
    server: str
    ca_pem: bytes | None = None
    token: str | None = None
    namespace: str | None = None
    insecure_skip_tls_verify: bool = False


@dataclass(frozen=True)
class Kubeconfig:
    contexts: tuple[KubeContext, ...]
    current_context: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    """Top-level named extensions: name -> the extension object (any JSON-like value)."""

    def context(self, name: str | None = None) -> KubeContext:
        """The named context, or the current one; KubeconfigError when there is none."""
        wanted = name or self.current_context
        for ctx in self.contexts:
            if ctx.name == wanted:
                return ctx
        raise KubeconfigError(f"context {wanted!r} not found in kubeconfig")

    def names(self) -> list[str]:
        return [c.name for c in self.contexts]


def render_kubeconfig(config: Kubeconfig) -> dict[str, Any]:
    """The kubeconfig document as kubectl writes it (``apiVersion: v1``, ``kind: Config``)."""
    clusters: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []
    contexts: list[dict[str, Any]] = []
    for ctx in config.contexts:
        cluster: dict[str, Any] = {"server": ctx.server}
        if ctx.ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(ctx.ca_pem).decode("ascii")
        if ctx.insecure_skip_tls_verify:
            cluster["insecure-skip-tls-verify"] = True
        clusters.append({"name": ctx.name, "cluster": cluster})
        user: dict[str, Any] = {}
        if ctx.token is not None:
            user["token"] = ctx.token
        users.append({"name": ctx.name, "user": user})
        context: dict[str, Any] = {"cluster": ctx.name, "user": ctx.name}
        if ctx.namespace:
            context["namespace"] = ctx.namespace
        contexts.append({"name": ctx.name, "context": context})
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
        "current-context": config.current_context or "",
    }
    if config.extensions:
        doc["extensions"] = [{"name": k, "extension": v} for k, v in config.extensions.items()]
    return doc


def write_kubeconfig(path: Path, config: Kubeconfig) -> None:
    """Write ``config`` to ``path`` atomically, mode 0600; parent directories are created."""
    names = config.names()
    if len(set(names)) != len(names):
        raise KubeconfigError("context names must be unique")
    if config.current_context and config.current_context not in names:
        raise KubeconfigError(f"current context {config.current_context!r} is not one of the contexts")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(render_kubeconfig(config), sort_keys=False, default_flow_style=False)
    write_atomically(path, text, mode=0o600)


def _named(doc: dict[str, Any], key: str, inner: str) -> dict[str, dict[str, Any]]:
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise KubeconfigError(f"{key} must be a list")
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise KubeconfigError(f"every entry of {key} needs a name")
        value = entry.get(inner) or {}
        if not isinstance(value, dict):
            raise KubeconfigError(f"{key}[{entry['name']}].{inner} must be a mapping")
        out[entry["name"]] = value
    return out


def _relative(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base.parent / p


def parse_kubeconfig(doc: Any, *, origin: Path | None = None) -> Kubeconfig:
    """Resolve a loaded kubeconfig document; relative file references are taken from ``origin``."""
    if not isinstance(doc, dict):
        raise KubeconfigError("a kubeconfig must be a mapping")
    base = origin or Path.cwd() / "kubeconfig"
    clusters = _named(doc, "clusters", "cluster")
    users = _named(doc, "users", "user")
    contexts: list[KubeContext] = []
    for name, ctx in _named(doc, "contexts", "context").items():
        cluster = clusters.get(str(ctx.get("cluster", "")))
        if cluster is None:
            raise KubeconfigError(f"context {name!r} names an unknown cluster")
        user = users.get(str(ctx.get("user", "")), {})
        ca: bytes | None = None
        if cluster.get("certificate-authority-data"):
            try:
                ca = base64.b64decode(str(cluster["certificate-authority-data"]), validate=True)
            except ValueError as err:
                raise KubeconfigError(f"cluster of context {name!r}: bad certificate-authority-data") from err
        elif cluster.get("certificate-authority"):
            try:
                ca = _relative(base, str(cluster["certificate-authority"])).read_bytes()
            except OSError as err:
                raise KubeconfigError(f"cluster of context {name!r}: {err}") from err
        token: str | None = None
        if user.get("token"):
            token = str(user["token"])
        elif user.get("tokenFile"):
            try:
                token = _relative(base, str(user["tokenFile"])).read_text().strip()
            except OSError as err:
                raise KubeconfigError(f"user of context {name!r}: {err}") from err
        contexts.append(
            KubeContext(
                name=name,
                server=str(cluster.get("server", "")),
                ca_pem=ca,
                token=token,
                namespace=str(ctx["namespace"]) if ctx.get("namespace") else None,
                insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
            )
        )
    extensions: dict[str, Any] = {}
    for entry in doc.get("extensions") or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            extensions[entry["name"]] = entry.get("extension")
    current = doc.get("current-context") or None
    return Kubeconfig(tuple(contexts), str(current) if current else None, extensions)


def read_kubeconfig(path: Path) -> Kubeconfig:
    """Read and resolve the kubeconfig at ``path``."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {err}") from err
    return parse_kubeconfig(doc, origin=path)
