"""Credentials read from a Cluster's Secret: what is accepted, and the one line a bad Secret gets."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from federation.apimachinery import generate_bundle
from federation.members import Credentials, CredentialsError, credentials_from_secret

BUNDLE = generate_bundle()
TOKEN = "s3cr3t-token-value"


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def cluster(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "federation.io/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "a"},
        "spec": {"server": "https://127.0.0.1:6443", "secretRef": {"name": "a-creds"}, **spec},
    }


def secret(**data: str | bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "a-creds", "namespace": "federation-system"},
        "data": {key.replace("_", "."): b64(value) for key, value in data.items()},
    }


def test_a_token_and_a_ca() -> None:
    made = credentials_from_secret(cluster(), secret(token=TOKEN + "\n", ca_crt=BUNDLE.ca_pem))
    assert made == Credentials(server="https://127.0.0.1:6443", token=TOKEN, ca_pem=BUNDLE.ca_pem.decode())
    assert TOKEN not in repr(made)
    assert "BEGIN" not in repr(made)
    assert made.describe() == "token"


def test_a_client_certificate_and_key() -> None:
    made = credentials_from_secret(
        cluster(), secret(client_crt=BUNDLE.cert_pem, client_key=BUNDLE.key_pem, ca_crt=BUNDLE.ca_pem)
    )
    assert made.token is None
    assert made.client_cert_pem == BUNDLE.cert_pem.decode()
    assert made.client_key_pem == BUNDLE.key_pem.decode()
    assert "PRIVATE" not in repr(made)
    assert made.describe() == "client certificate"


@pytest.mark.parametrize(
    ("spec", "data"),
    [({}, {"insecure-skip-tls-verify": b64("true")}), ({"insecureSkipTLSVerify": True}, {})],
    ids=["in-secret", "in-cluster-spec"],
)
def test_insecure_needs_no_ca(spec: dict[str, Any], data: dict[str, str]) -> None:
    doc = secret(token=TOKEN)
    doc["data"].update(data)
    made = credentials_from_secret(cluster(**spec), doc)
    assert made.insecure_skip_tls_verify
    assert made.ca_pem is None


def test_a_plain_http_server_needs_no_ca() -> None:
    made = credentials_from_secret(cluster(server="http://127.0.0.1:8080/"), secret(token=TOKEN))
    assert made.server == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("the_cluster", "the_secret", "message"),
    [
        (cluster(), None, "Secret federation-system/a-creds (credentials of Cluster a) not found"),
        (cluster(secretRef=None), secret(token=TOKEN), "Cluster a has no spec.secretRef.name"),
        (cluster(server=""), secret(token=TOKEN), "Cluster a has no spec.server"),
        (
            cluster(),
            secret(ca_crt=BUNDLE.ca_pem),
            'Secret federation-system/a-creds has no "token" and no "client.crt"/"client.key"',
        ),
        (
            cluster(),
            secret(token=TOKEN),
            'Secret federation-system/a-creds has no "ca.crt" '
            '(or set "insecure-skip-tls-verify": "true" to skip verifying the server)',
        ),
        (
            cluster(),
            secret(client_crt=BUNDLE.cert_pem, ca_crt=BUNDLE.ca_pem),
            'Secret federation-system/a-creds has "client.crt" but no "client.key"',
        ),
        (
            cluster(),
            secret(client_key=BUNDLE.key_pem, ca_crt=BUNDLE.ca_pem),
            'Secret federation-system/a-creds has "client.key" but no "client.crt"',
        ),
        (
            cluster(),
            secret(token=TOKEN, ca_crt="not a certificate"),
            'Secret federation-system/a-creds: "ca.crt" is not a PEM certificate',
        ),
        (
            cluster(),
            secret(client_crt=BUNDLE.cert_pem, client_key=TOKEN, ca_crt=BUNDLE.ca_pem),
            'Secret federation-system/a-creds: "client.key" is not an unencrypted PEM private key',
        ),
    ],
    ids=[
        "missing-secret",
        "no-secret-ref",
        "no-server",
        "no-token-no-cert",
        "no-ca",
        "cert-without-key",
        "key-without-cert",
        "bad-ca-pem",
        "bad-key-pem",
    ],
)
def test_what_a_bad_secret_is_told(
    the_cluster: dict[str, Any], the_secret: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(CredentialsError) as caught:
        credentials_from_secret(the_cluster, the_secret)
    assert str(caught.value) == message
    assert TOKEN not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_base64_names_the_key_and_not_the_value() -> None:
    doc = secret(ca_crt=BUNDLE.ca_pem)
    doc["data"]["token"] = "%%" + TOKEN + "%%"
    with pytest.raises(CredentialsError) as caught:
        credentials_from_secret(cluster(), doc)
    assert str(caught.value) == 'Secret federation-system/a-creds: "token" is not valid base64'
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_private_key_never_shows_in_an_error() -> None:
    broken_key = BUNDLE.key_pem.decode().replace("A", "B", 5)
    with pytest.raises(CredentialsError) as caught:
        credentials_from_secret(
            cluster(), secret(client_crt=BUNDLE.cert_pem, client_key=broken_key, ca_crt=BUNDLE.ca_pem)
        )
    assert "PRIVATE" not in str(caught.value)
    assert caught.value.__cause__ is None
