"""TLS material for the servers that speak the Kubernetes API on loopback.

Both the federation API server and every simulated member cluster serve HTTPS with a CA of their own,
whose certificate goes into the kubeconfig (``certificate-authority-data``), so ``kubectl`` and the
official client verify the server exactly as they verify GKE.

Guarantees:

* :func:`ensure_ca_and_serving_cert` loads the files from a directory when they are present, valid for
  at least :data:`RENEW_BEFORE` more and cover the requested hosts; otherwise it (re)creates what is
  missing. The CA is kept when it is still good, so kubeconfigs written earlier stay valid. Private keys
  are written with mode 0600, atomically (a reader never sees half a file).
* :func:`generate_bundle` creates a CA and one serving certificate in memory only, in a few
  milliseconds (ECDSA P-256), for a simulator whose 100 clusters share one CA and one certificate.
* Serving certificates carry the SANs Go's and Python's verifiers require (IP and DNS names, server-auth
  EKU, subject/authority key identifiers), so strict verification passes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.apimachinery.files import write_atomically

CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
"""A certificate closer than this to its end is replaced on the next load."""

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class CertificateBundle:
    """A CA and a serving certificate signed by it, as PEM bytes (nothing on disk)."""

    ca_pem: bytes
    ca_key_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the serving certificate (TLS 1.2 or newer)."""
        return server_context(self.cert_pem, self.key_pem)


@dataclass(frozen=True)
class ServingCert:
    """Where :func:`ensure_ca_and_serving_cert` keeps its files, and the CA for kubeconfigs."""

    ca_cert: Path
    cert: Path
    key: Path
    ca_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = _now() - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _san(hosts: list[str] | tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _make_serving(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: list[str] | tuple[str, ...]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    start = _now() - dt.timedelta(minutes=5)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "localhost")])
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(start + SERVING_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def generate_bundle(
    *, hosts: list[str] | tuple[str, ...] = DEFAULT_HOSTS, common_name: str = "federation-ca"
) -> CertificateBundle:
    """A fresh CA and serving certificate for ``hosts``, in memory."""
    ca_cert, ca_key = _make_ca(common_name)
    cert, key = _make_serving(ca_cert, ca_key, hosts)
    return CertificateBundle(_cert_pem(ca_cert), _key_pem(ca_key), _cert_pem(cert), _key_pem(key))


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context from PEM bytes.

    :mod:`ssl` loads certificates only from files, so the PEMs pass through a private temporary
    directory (mode 0700, key 0600) that is removed before this returns.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="federation-tls-") as tmp:
        cert_path = Path(tmp) / "tls.crt"
        key_path = Path(tmp) / "tls.key"
        write_atomically(cert_path, cert_pem, mode=0o600)
        write_atomically(key_path, key_pem, mode=0o600)
        ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _fresh(cert: x509.Certificate) -> bool:
    now = _now()
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def _covers(cert: x509.Certificate, hosts: list[str]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )
    return all(str(h) in have for h in hosts)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def ensure_ca_and_serving_cert(
    directory: Path, *, hosts: list[str], common_name: str = "federation-ca"
) -> ServingCert:
    """Load or create ``ca.crt``/``ca.key`` and ``tls.crt``/``tls.key`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_path, ca_key_path = directory / "ca.crt", directory / "ca.key"
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"

    ca_cert, ca_key = _load_cert(ca_path), _load_key(ca_key_path)
    if ca_cert is None or ca_key is None or not _fresh(ca_cert) or not _same_key(ca_cert, ca_key):
        ca_cert, ca_key = _make_ca(common_name)
        write_atomically(ca_key_path, _key_pem(ca_key), mode=0o600)
        write_atomically(ca_path, _cert_pem(ca_cert), mode=0o644)
        cert_path.unlink(missing_ok=True)

    cert, key = _load_cert(cert_path), _load_key(key_path)
    valid = (
        cert is not None
        and key is not None
        and _fresh(cert)
        and _covers(cert, hosts)
        and _signed_by(cert, ca_cert)
        and _same_key(cert, key)
    )
    if not valid:
        new_cert, new_key = _make_serving(ca_cert, ca_key, hosts)
        write_atomically(key_path, _key_pem(new_key), mode=0o600)
        write_atomically(cert_path, _cert_pem(new_cert), mode=0o644)
    return ServingCert(ca_path, cert_path, key_path, _cert_pem(ca_cert))
