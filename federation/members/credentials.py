"""How the federation proves who it is to a member cluster, read from the Cluster's Secret.

A ``Cluster`` names its API server (``spec.server``) and a Secret in ``federation-system``
(``spec.secretRef.name``) whose ``data`` holds, base64 as stored:

* ``token`` (a bearer token) and/or ``client.crt`` + ``client.key`` (PEM; a client certificate);
* ``ca.crt`` (PEM; the CA the server's certificate must chain to), unless
  ``insecure-skip-tls-verify`` is ``"true"`` (or the Cluster's ``spec.insecureSkipTLSVerify``), or
  the server is plain ``http``;

:func:`credentials_from_secret` turns them into :class:`Credentials`, checking everything a client
would otherwise trip over later (base64, PEM, a certificate without its key). What it guarantees:
a :class:`CredentialsError` says in one line which Secret and which key is wrong and never quotes a
value; a :class:`Credentials`' ``repr`` shows the server and whether TLS is verified, never the
token, the key or the certificates.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from federation.apimachinery import Obj
from federation.apis import SYSTEM_NAMESPACE

TOKEN_KEY = "token"
CERT_KEY = "client.crt"
KEY_KEY = "client.key"
CA_KEY = "ca.crt"
INSECURE_KEY = "insecure-skip-tls-verify"


class CredentialsError(ValueError):
    """Credentials that cannot be used; ``str()`` is one line naming the Secret and the key."""


@dataclass(frozen=True)
class Credentials:
    """Where a member's API server is and how to authenticate to it (PEM text, not files)."""

    server: str
    token: str | None = field(default=None, repr=False)
    client_cert_pem: str | None = field(default=None, repr=False)
    client_key_pem: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    insecure_skip_tls_verify: bool = False

    def __post_init__(self) -> None:
        if (self.client_cert_pem is None) != (self.client_key_pem is None):
            raise CredentialsError("a client certificate needs its key, and a key its certificate")

    @property
    def verifies_tls(self) -> bool:
        return not self.insecure_skip_tls_verify

    def describe(self) -> str:
        """How these credentials authenticate, for logs (``token``, ``client certificate``)."""
        ways = [w for w, on in (("token", self.token), ("client certificate", self.client_cert_pem)) if on]
        return " and ".join(ways) or "nothing"


def _spec(cluster: Obj) -> dict[str, Any]:
    spec = cluster.get("spec")
    return spec if isinstance(spec, dict) else {}


def _cluster_name(cluster: Obj) -> str:
    meta = cluster.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return str(name) if name else "<unnamed>"


def _decode(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise CredentialsError(f'{where}: "{key}" must be a base64 string')
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsError(f'{where}: "{key}" is not valid base64') from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f'{where}: "{key}" is not UTF-8 text') from None


def _check_certificates(where: str, key: str, pem: str) -> None:
    try:
        found = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        found = []
    if not found:
        raise CredentialsError(f'{where}: "{key}" is not a PEM certificate')


def _check_private_key(where: str, key: str, pem: str) -> None:
    try:
        serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # never chained: it might quote the input
        raise CredentialsError(f'{where}: "{key}" is not an unencrypted PEM private key') from None


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def credentials_from_secret(cluster: Obj, secret: Obj | None) -> Credentials:
    """The :class:`Credentials` for ``cluster`` from its Secret as stored (``None``: it is missing).

    Raises :class:`CredentialsError` for a Cluster without ``spec.server`` or ``spec.secretRef``,
    a missing Secret, a value that is not base64 / PEM, neither a token nor a certificate and key,
    or no ``ca.crt`` for an ``https`` server whose certificate is to be verified."""
    name = _cluster_name(cluster)
    spec = _spec(cluster)
    server = spec.get("server")
    if not isinstance(server, str) or not server:
        raise CredentialsError(f"Cluster {name} has no spec.server")
    ref = spec.get("secretRef")
    secret_name = ref.get("name") if isinstance(ref, dict) else None
    if not isinstance(secret_name, str) or not secret_name:
        raise CredentialsError(f"Cluster {name} has no spec.secretRef.name")
    where = f"Secret {SYSTEM_NAMESPACE}/{secret_name}"
    if secret is None:
        raise CredentialsError(f"{where} (credentials of Cluster {name}) not found")
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        raise CredentialsError(f"{where}: data must be a mapping")

    def text(key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        decoded = _decode(where, key, value)
        return decoded if decoded.strip() else None

    token = text(TOKEN_KEY)
    cert, key = text(CERT_KEY), text(KEY_KEY)
    ca = text(CA_KEY)
    insecure_value = text(INSECURE_KEY)
    insecure = _flag(insecure_value) or _flag(spec.get("insecureSkipTLSVerify"))
    if token is not None:
        token = token.strip()
    if cert is not None and key is None:
        raise CredentialsError(f'{where} has "{CERT_KEY}" but no "{KEY_KEY}"')
    if key is not None and cert is None:
        raise CredentialsError(f'{where} has "{KEY_KEY}" but no "{CERT_KEY}"')
    if token is None and cert is None:
        raise CredentialsError(f'{where} has no "{TOKEN_KEY}" and no "{CERT_KEY}"/"{KEY_KEY}"')
    if cert is not None and key is not None:
        _check_certificates(where, CERT_KEY, cert)
        _check_private_key(where, KEY_KEY, key)
    if ca is not None:
        _check_certificates(where, CA_KEY, ca)
    plain_http = urlsplit(server).scheme == "http"
    if ca is None and not insecure and not plain_http:
        raise CredentialsError(
            f'{where} has no "{CA_KEY}" (or set "{INSECURE_KEY}": "true" to skip verifying the server)'
        )
    return Credentials(
        server=server.rstrip("/"),
        token=token,
        client_cert_pem=cert,
        client_key_pem=key,
        ca_pem=ca,
        insecure_skip_tls_verify=insecure,
    )
