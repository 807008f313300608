"""``FEDERATION_TRAFFIC_*`` settings: loopback unless opened on purpose, ranges and codes parsed, bad
values named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from federation.settings import TrafficSettings, describe_error


def test_the_defaults_are_the_measured_ones() -> None:
    settings = TrafficSettings()
    assert settings.traffic_provider == "caddy"
    assert settings.traffic_address == "127.0.0.1"
    assert settings.traffic_port_range() == range(31000, 32000)
    assert settings.caddy_admin_port == 0
    assert settings.traffic_response_header_timeout == 0.4
    assert settings.traffic_dial_timeout == 0.2
    assert settings.traffic_max_fails == 1
    assert settings.unhealthy_statuses() == (5,)


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDERATION_TRAFFIC_PROVIDER", "none")
    monkeypatch.setenv("FEDERATION_TRAFFIC_PORTS", "40000-40009")
    monkeypatch.setenv("FEDERATION_TRAFFIC_UNHEALTHY_STATUS", "5xx, 429")
    settings = TrafficSettings()
    assert settings.traffic_provider == "none"
    assert settings.traffic_port_range() == range(40000, 40010)
    assert settings.unhealthy_statuses() == (5, 429)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.53", "::1", "::ffff:127.0.0.1"])
def test_loopback_addresses_need_nothing_more(address: str) -> None:
    assert TrafficSettings(traffic_address=address).traffic_address == address


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.0.0.7", "192.168.1.20"])
def test_other_addresses_need_allow_external(address: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TrafficSettings(traffic_address=address)
    assert "FEDERATION_TRAFFIC_ALLOW_EXTERNAL=true" in describe_error(refused.value)
    assert TrafficSettings(traffic_address=address, traffic_allow_external=True).traffic_address == address


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"traffic_address": "lb.example.com"}, "FEDERATION_TRAFFIC_ADDRESS must be an IP address"),
        ({"traffic_provider": "haproxy"}, "FEDERATION_TRAFFIC_PROVIDER: Input should be 'caddy' or 'none'"),
        ({"traffic_ports": "31999-31000"}, "FEDERATION_TRAFFIC_PORTS must be low-high"),
        ({"traffic_ports": "0-10"}, "FEDERATION_TRAFFIC_PORTS must be low-high"),
        ({"traffic_ports": "many"}, "FEDERATION_TRAFFIC_PORTS must be a range like 31000-31999"),
        ({"caddy_admin_port": 65535}, "FEDERATION_CADDY_ADMIN_PORT must be between 0 and 65534"),
        ({"caddy_admin_port": 31999}, "FEDERATION_CADDY_ADMIN_PORT (N and N+1) must be outside"),
        ({"traffic_unhealthy_status": "5x"}, "FEDERATION_TRAFFIC_UNHEALTHY_STATUS: '5x' is neither"),
        ({"traffic_unhealthy_status": "600"}, "FEDERATION_TRAFFIC_UNHEALTHY_STATUS: '600' is neither"),
        (
            {"traffic_response_header_timeout": 0},
            "FEDERATION_TRAFFIC_RESPONSE_HEADER_TIMEOUT: must be between",
        ),
        ({"traffic_max_fails": 0}, "FEDERATION_TRAFFIC_MAX_FAILS: must be between 1 and 100"),
    ],
    ids=[
        "hostname",
        "unknown-provider",
        "reversed-ports",
        "port-zero",
        "not-a-range",
        "admin-no-room",
        "admin-in-range",
        "bad-class",
        "bad-code",
        "zero-timeout",
        "zero-fails",
    ],
)
def test_bad_values_are_named(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TrafficSettings(**overrides)  # type: ignore[arg-type]
    assert describe_error(refused.value).startswith(expected), describe_error(refused.value)


def test_one_port_is_a_range_of_one() -> None:
    assert TrafficSettings(traffic_ports="31500").traffic_port_range() == range(31500, 31501)
