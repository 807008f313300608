"""Registering a member cluster: its kubeconfig read into credentials, and the two objects that join it.

``fedctl cluster join`` and ``fedctl cluster list`` are thin commands over the pure pieces here, so
what they build and show is tested without a server:

* :func:`member_credentials` resolves one context of a member's kubeconfig as kubectl would: the
  server; a bearer ``token`` (or ``tokenFile``); a client certificate and key (inline ``-data`` or
  file paths, relative to the kubeconfig); the CA (``certificate-authority-data`` or a file) or
  ``insecure-skip-tls-verify``. Users that authenticate through an ``exec`` plugin or an
  ``auth-provider`` are refused with the reason: the federation stores credentials, it runs no
  plugins. ``federation.apimachinery.read_kubeconfig`` reads only what the federation's own files
  hold (token and CA), hence this reader of the member's.
* :func:`registration` builds the credentials Secret (``<name>-credentials`` in
  ``federation-system``, the keys ``federation.members.credentials_from_secret`` reads) and the
  Cluster naming it; reading the pair back gives the same credentials (a unit test checks it).
* :func:`cluster_row` is one line of ``cluster list``: ``Ready``, ``Offline (reason)`` or ``Unknown``
  from the Ready condition, ``,SchedulingDisabled`` when cordoned (as kubectl shows cordoned nodes).

Nothing here prints or logs a credential: errors name the file, the context and the field, never a
value, and :class:`federation.members.Credentials`' repr hides them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from federation.apimachinery import Obj
from federation.apis import GROUP, REGION_LABEL, SYSTEM_NAMESPACE, VERSION

if TYPE_CHECKING:  # loaded when used: the credentials' checks import cryptography (fedctl starts fast)
    from federation.members import Credentials


class JoinError(ValueError):
    """A member cannot be registered as asked; ``str()`` is one line without secrets."""


def secret_name(cluster: str) -> str:
    return f"{cluster}-credentials"


def _named(doc: Mapping[str, Any], key: str, inner: str, where: str) -> dict[str, dict[str, Any]]:
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise JoinError(f"{where}: {key} must be a list")
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            value = entry.get(inner) or {}
            out[entry["name"]] = value if isinstance(value, dict) else {}
    return out


def _data_or_file(
    section: Mapping[str, Any], key: str, base: Path, where: str, *, decode: bool = True
) -> str | None:
    """``<key>-data`` (base64) or the file ``<key>`` (relative to the kubeconfig), as text."""
    inline = section.get(f"{key}-data")
    if inline:
        try:
            raw = base64.b64decode(str(inline), validate=True)
        except (binascii.Error, ValueError):
            raise JoinError(f"{where}: {key}-data is not valid base64") from None
    elif section.get(key):
        path = Path(str(section[key])).expanduser()
        path = path if path.is_absolute() else base.parent / path
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise JoinError(f"{where}: cannot read {key} {path}: {err.strerror or err}") from None
    else:
        return None
    try:
        return raw.decode("utf-8") if decode else raw.decode("latin-1")
    except UnicodeDecodeError:
        raise JoinError(f"{where}: {key} is not text (PEM expected)") from None


def member_credentials(kubeconfig: Path, context: str | None = None) -> tuple[str, Credentials]:
    """(context name, credentials) of ``context`` (default: the current one) in ``kubeconfig``."""
    from federation.members import Credentials, CredentialsError

    try:
        doc = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    except OSError as err:
        raise JoinError(f"cannot read kubeconfig {kubeconfig}: {err.strerror or err}") from None
    except yaml.YAMLError:
        raise JoinError(f"kubeconfig {kubeconfig} is not valid YAML") from None
    if not isinstance(doc, dict):
        raise JoinError(f"kubeconfig {kubeconfig} is not a kubeconfig (a mapping)")
    where = f"kubeconfig {kubeconfig}"
    contexts = _named(doc, "contexts", "context", where)
    name = context or doc.get("current-context") or None
    if not name:
        raise JoinError(f"{where} has no current-context: name one with --cluster-context")
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise JoinError(f"{where}: context {name!r} not found (contexts: {known})")
    ctx = contexts[name]
    where = f"{where}, context {name}"
    cluster = _named(doc, "clusters", "cluster", where).get(str(ctx.get("cluster", "")))
    if cluster is None:
        raise JoinError(f"{where}: names an unknown cluster {ctx.get('cluster')!r}")
    user = _named(doc, "users", "user", where).get(str(ctx.get("user", "")), {})
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise JoinError(f"{where}: the cluster has no server")
    if user.get("exec") or user.get("auth-provider"):
        plugin = "an exec plugin" if user.get("exec") else "an auth-provider"
        raise JoinError(
            f"{where}: the user authenticates with {plugin}; the federation needs a token or a "
            "client certificate it can store (e.g. a ServiceAccount token)"
        )
    token: str | None = None
    if user.get("token"):
        token = str(user["token"]).strip()
    elif user.get("tokenFile"):
        path = Path(str(user["tokenFile"])).expanduser()
        path = path if path.is_absolute() else kubeconfig.parent / path
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise JoinError(f"{where}: cannot read tokenFile {path}: {err}") from None
    base = kubeconfig
    cert = _data_or_file(user, "client-certificate", base, where)
    key = _data_or_file(user, "client-key", base, where)
    ca = _data_or_file(cluster, "certificate-authority", base, where)
    insecure = cluster.get("insecure-skip-tls-verify") in (True, "true")
    if (cert is None) != (key is None):
        raise JoinError(f"{where}: a client certificate needs its key, and a key its certificate")
    if not token and cert is None:
        raise JoinError(f"{where}: the user has neither a token nor a client certificate")
    if ca is None and not insecure and server.startswith("https:"):
        raise JoinError(f"{where}: no certificate authority for {server} (nor insecure-skip-tls-verify)")
    try:
        return str(name), Credentials(
            server=server,
            token=token or None,
            client_cert_pem=cert,
            client_key_pem=key,
            ca_pem=None if insecure else ca,
            insecure_skip_tls_verify=insecure,
        )
    except CredentialsError as err:
        raise JoinError(f"{where}: {err}") from None


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a mapping; a pair without ``=`` or with an empty key is a JoinError."""
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise JoinError(f"--label {pair!r} must be key=value")
        labels[key.strip()] = value.strip()
    return labels


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def registration(name: str, credentials: Credentials, labels: Mapping[str, str]) -> tuple[Obj, Obj]:
    """The credentials Secret and the Cluster that register member ``name``."""
    data: dict[str, str] = {}
    if credentials.token:
        data["token"] = _b64(credentials.token)
    if credentials.client_cert_pem and credentials.client_key_pem:
        data["client.crt"] = _b64(credentials.client_cert_pem)
        data["client.key"] = _b64(credentials.client_key_pem)
    if credentials.insecure_skip_tls_verify:
        data["insecure-skip-tls-verify"] = _b64("true")
    elif credentials.ca_pem:
        data["ca.crt"] = _b64(credentials.ca_pem)
    secret: Obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(name), "namespace": SYSTEM_NAMESPACE},
        "type": "Opaque",
        "data": data,
    }
    cluster: Obj = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Cluster",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"server": credentials.server, "secretRef": {"name": secret_name(name)}},
    }
    return secret, cluster


def region_from_nodes(regions: Sequence[str]) -> tuple[str | None, str]:
    """The region to label a member with from its nodes' regions, and a line saying what was done."""
    if len(regions) == 1:
        return regions[0], f"region {regions[0]} (from the member's nodes)"
    if not regions:
        return None, f"region: none (its nodes have no {REGION_LABEL} label); set it with --label"
    return None, f"region: none (its nodes are in {', '.join(regions)}); set it with --label"


# -- cluster list -------------------------------------------------------------------------------------


def ready_condition(cluster: Obj) -> dict[str, Any] | None:
    for cond in (cluster.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond
    return None


def is_ready(cluster: Obj) -> bool:
    cond = ready_condition(cluster)
    return cond is not None and cond.get("status") == "True"


def is_cordoned(cluster: Obj) -> bool:
    return bool((cluster.get("spec") or {}).get("unschedulable"))


def health(cluster: Obj) -> str:
    """``Ready``, ``Offline (Reason)`` or ``Unknown``."""
    cond = ready_condition(cluster)
    if cond is None or cond.get("status") not in ("True", "False"):
        return "Unknown"
    if cond["status"] == "True":
        return "Ready"
    reason = cond.get("reason")
    return f"Offline ({reason})" if reason else "Offline"


def status_text(cluster: Obj) -> str:
    text = health(cluster)
    return f"{text},SchedulingDisabled" if is_cordoned(cluster) else text


def age(created: str | None, now: datetime) -> str:
    """kubectl's short age (``45s``, ``3m``, ``5h``, ``2d``); ``<unknown>`` without a timestamp."""
    if not created:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


CLUSTER_COLUMNS = ("NAME", "REGION", "STATUS", "VERSION", "NODES", "AGE")


def cluster_row(cluster: Obj, now: datetime | None = None) -> tuple[str, ...]:
    """NAME REGION STATUS VERSION NODES AGE of one Cluster."""
    m = cluster.get("metadata") or {}
    status = cluster.get("status") or {}
    nodes = (status.get("capacity") or {}).get("nodes")
    return (
        str(m.get("name", "")),
        str((m.get("labels") or {}).get(REGION_LABEL) or "<none>"),
        status_text(cluster),
        str(status.get("kubernetesVersion") or "<unknown>"),
        "<unknown>" if nodes is None else str(nodes),
        age(m.get("creationTimestamp"), now or datetime.now(UTC)),
    )


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded as kubectl pads them (three spaces apart)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]
    return "\n".join(lines)
