"""Settings read from ``FEDERATION_*`` variables: the worker count, plain HTTP on loopback only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from federation.settings import ServerSettings, describe_error


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 1), ("1", 1), ("4", 4)],
    ids=["default", "one", "four"],
)
def test_workers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    if value is None:
        monkeypatch.delenv("FEDERATION_WORKERS", raising=False)
    else:
        monkeypatch.setenv("FEDERATION_WORKERS", value)
    assert ServerSettings().workers == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "FEDERATION_WORKERS must be at least 1"),
        ("-2", "FEDERATION_WORKERS must be at least 1"),
        ("two", "FEDERATION_WORKERS: Input should be a valid integer"),
    ],
    ids=["zero", "negative", "not-a-number"],
)
def test_a_bad_worker_count_is_named(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv("FEDERATION_WORKERS", value)
    with pytest.raises(ValidationError) as refused:
        ServerSettings()
    assert describe_error(refused.value).startswith(expected)


def test_an_override_is_validated_like_the_variable() -> None:
    """``fedctl up --workers N`` overrides the variable the same way (init arguments win)."""
    assert ServerSettings(workers=3).workers == 3
    with pytest.raises(ValidationError):
        ServerSettings(workers=0)


INSECURE_REFUSED = "FEDERATION_INSECURE_HTTP is refused on a non-loopback FEDERATION_LISTEN_ADDRESS"


@pytest.mark.parametrize(
    "address",
    ["0.0.0.0", "::", "10.0.0.7", "192.168.1.20", "fd00::1", "federation.example.com"],
    ids=["all-ipv4", "all-ipv6", "private", "lan", "ipv6-ula", "hostname"],
)
def test_plain_http_off_loopback_is_refused(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("FEDERATION_INSECURE_HTTP", "true")
    monkeypatch.setenv("FEDERATION_LISTEN_ADDRESS", address)
    with pytest.raises(ValidationError) as refused:
        ServerSettings()
    assert describe_error(refused.value).startswith(INSECURE_REFUSED)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1", "localhost"],
    ids=["ipv4", "ipv4-other", "ipv6", "ipv4-mapped", "localhost"],
)
def test_plain_http_on_loopback_is_allowed(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("FEDERATION_INSECURE_HTTP", "true")
    monkeypatch.setenv("FEDERATION_LISTEN_ADDRESS", address)
    settings = ServerSettings()
    assert settings.insecure_http
    assert settings.listen_address == address


def test_plain_http_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FEDERATION_INSECURE_HTTP=true`` alone, as the tests and a proxy sidecar set it, is accepted."""
    monkeypatch.delenv("FEDERATION_LISTEN_ADDRESS", raising=False)
    monkeypatch.setenv("FEDERATION_INSECURE_HTTP", "true")
    assert ServerSettings().listen_address == "127.0.0.1"


def test_tls_is_served_on_any_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDERATION_INSECURE_HTTP", raising=False)
    monkeypatch.setenv("FEDERATION_LISTEN_ADDRESS", "0.0.0.0")
    assert ServerSettings().listen_address == "0.0.0.0"
