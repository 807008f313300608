"""TLS material: a CA and serving certificates that kubectl's and Python's verifiers accept."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from federation.apimachinery import certificates
from federation.apimachinery.certificates import ensure_ca_and_serving_cert, generate_bundle


def _sans(pem: bytes) -> set[str]:
    cert = x509.load_pem_x509_certificate(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )


def test_bundle_is_a_ca_and_a_server_certificate_signed_by_it() -> None:
    bundle = generate_bundle(hosts=["127.0.0.1", "localhost"])
    ca = x509.load_pem_x509_certificate(bundle.ca_pem)
    cert = x509.load_pem_x509_certificate(bundle.cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert _sans(bundle.cert_pem) == {"127.0.0.1", "localhost"}
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


def test_a_client_trusting_only_the_ca_completes_a_handshake_with_the_server_context() -> None:
    bundle = generate_bundle()
    server_ctx = bundle.server_context()
    client_ctx = ssl.create_default_context(cadata=bundle.ca_pem.decode())
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        outcome: dict[str, str] = {}

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                outcome["server"] = tls.version() or ""
                tls.recv(1)

        worker = threading.Thread(target=serve)
        worker.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            outcome["client"] = tls.version() or ""
            tls.sendall(b"x")
        worker.join(timeout=10)
    assert outcome["client"].startswith("TLSv1.")
    assert outcome["server"] == outcome["client"]


def test_ensure_creates_files_with_private_keys_mode_0600(tmp_path: Path) -> None:
    made = ensure_ca_and_serving_cert(tmp_path / "pki", hosts=["127.0.0.1", "localhost"])
    for key in ("ca.key", "tls.key"):
        assert stat.S_IMODE((tmp_path / "pki" / key).stat().st_mode) == 0o600
    assert made.ca_pem == made.ca_cert.read_bytes()
    assert _sans(made.cert.read_bytes()) == {"127.0.0.1", "localhost"}
    made.server_context()  # loads


def test_ensure_loads_what_is_there_and_keeps_the_ca_when_hosts_change(tmp_path: Path) -> None:
    first = ensure_ca_and_serving_cert(tmp_path, hosts=["127.0.0.1"])
    cert_before = first.cert.read_bytes()
    again = ensure_ca_and_serving_cert(tmp_path, hosts=["127.0.0.1"])
    assert again.ca_pem == first.ca_pem
    assert again.cert.read_bytes() == cert_before
    widened = ensure_ca_and_serving_cert(tmp_path, hosts=["127.0.0.1", "localhost", "::1"])
    assert widened.ca_pem == first.ca_pem
    assert widened.cert.read_bytes() != cert_before
    assert _sans(widened.cert.read_bytes()) == {"127.0.0.1", "localhost", str(ipaddress.ip_address("::1"))}


def test_ensure_replaces_a_corrupt_or_foreign_serving_certificate(tmp_path: Path) -> None:
    first = ensure_ca_and_serving_cert(tmp_path, hosts=["127.0.0.1"])
    first.cert.write_bytes(generate_bundle(hosts=["127.0.0.1"]).cert_pem)  # signed by another CA
    fixed = ensure_ca_and_serving_cert(tmp_path, hosts=["127.0.0.1"])
    ca = x509.load_pem_x509_certificate(fixed.ca_pem)
    x509.load_pem_x509_certificate(fixed.cert.read_bytes()).verify_directly_issued_by(ca)
    fixed.key.write_text("garbage")
    healed = ensure_ca_and_serving_cert(tmp_path, hosts=["127.0.0.1"])
    healed.server_context()


def test_certificates_near_their_end_are_renewed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_ca_and_serving_cert(tmp_path, hosts=["127.0.0.1"])
    monkeypatch.setattr(certificates, "RENEW_BEFORE", certificates.CA_VALIDITY * 2)
    renewed = ensure_ca_and_serving_cert(tmp_path, hosts=["127.0.0.1"])
    assert renewed.ca_pem != first.ca_pem
