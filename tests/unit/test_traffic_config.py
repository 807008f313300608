"""Caddy's configuration as a pure function of routes and settings, and the routes' own checks."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.settings import TrafficSettings
from federation.traffic import Route, Upstream, balancer_config, edge_config, route_id

SETTINGS = TrafficSettings()


def web(*weights: int, port: int = 31000, name: str = "default/web") -> Route:
    upstreams = tuple(
        Upstream(cluster=f"c{i}", host="127.0.0.1", port=40000 + i, weight=w) for i, w in enumerate(weights)
    )
    return Route(name=name, listen_port=port, upstreams=upstreams)


def handler(route: Route, settings: TrafficSettings = SETTINGS) -> dict[str, Any]:
    config = balancer_config({route.name: route}, settings, inner_ports={route.name: 45000}, admin_port=2019)
    server = config["apps"]["http"]["servers"][route_id(route.name)]
    assert server["listen"] == ["127.0.0.1:45000"]
    return dict(server["routes"][0]["handle"][0])


@pytest.mark.parametrize(
    ("weights", "dials", "caddy_weights"),
    [
        ((2, 1), ["127.0.0.1:40000", "127.0.0.1:40001"], [2, 1]),
        ((0, 1), ["127.0.0.1:40001"], [1]),
        ((3, 0, 5), ["127.0.0.1:40000", "127.0.0.1:40002"], [3, 5]),
        ((7,), ["127.0.0.1:40000"], [7]),
    ],
    ids=["two-to-one", "first-offline", "middle-offline", "one-region"],
)
def test_upstreams_carry_the_weights_and_zero_is_left_out(
    weights: tuple[int, ...], dials: list[str], caddy_weights: list[int]
) -> None:
    got = handler(web(*weights))
    assert got["handler"] == "reverse_proxy"
    assert got["@id"] == "route-default_2f_web"
    assert [u["dial"] for u in got["upstreams"]] == dials
    assert got["load_balancing"]["selection_policy"] == {
        "policy": "weighted_round_robin",
        "weights": caddy_weights,
    }


@pytest.mark.parametrize("weights", [(0, 0), ()], ids=["all-offline", "no-region"])
def test_a_route_with_no_weight_answers_503(weights: tuple[int, ...]) -> None:
    got = handler(web(*weights))
    assert got["handler"] == "static_response"
    assert got["status_code"] == 503
    assert got["headers"]["Retry-After"] == ["1"]
    assert got["@id"] == route_id("default/web")


def test_retries_health_and_timeouts_follow_the_settings() -> None:
    got = handler(web(1, 1))
    assert got["load_balancing"] | {"selection_policy": None} == {
        "selection_policy": None,
        "retries": 3,
    }
    assert got["health_checks"] == {
        "passive": {"fail_duration": "2000ms", "max_fails": 1, "unhealthy_status": [5]}
    }
    assert got["transport"] == {
        "protocol": "http",
        "dial_timeout": "200ms",
        "response_header_timeout": "400ms",
    }

    tuned = TrafficSettings(
        traffic_response_header_timeout=2.5, traffic_fail_duration=10, traffic_unhealthy_status="502,503,429"
    )
    got = handler(web(1, 1), tuned)
    assert got["transport"]["response_header_timeout"] == "2500ms"
    assert got["health_checks"]["passive"]["unhealthy_status"] == [502, 503, 429]


@pytest.mark.parametrize(
    ("settings", "listen"),
    [
        (TrafficSettings(), "127.0.0.1:31000"),
        (TrafficSettings(traffic_address="0.0.0.0", traffic_allow_external=True), "0.0.0.0:31000"),
        (TrafficSettings(traffic_address="::1"), "[::1]:31000"),
        (TrafficSettings(traffic_address="10.1.2.3", traffic_allow_external=True), "10.1.2.3:31000"),
    ],
    ids=["loopback", "all-ipv4", "ipv6-loopback", "lan"],
)
def test_the_edge_listens_on_the_traffic_address_and_admin_on_loopback_only(
    settings: TrafficSettings, listen: str
) -> None:
    route = web(1)
    configs = [
        edge_config({route.name: route}, settings, inner_ports={route.name: 45000}, admin_port=2019),
        balancer_config({route.name: route}, settings, inner_ports={route.name: 45000}, admin_port=2020),
    ]
    edge, balancer = configs
    assert edge["apps"]["http"]["servers"][route_id(route.name)]["listen"] == [listen]
    proxy = edge["apps"]["http"]["servers"][route_id(route.name)]["routes"][0]["handle"][0]
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:45000"}]
    assert edge["admin"] == {"listen": "127.0.0.1:2019", "config": {"persist": False}}
    assert balancer["admin"] == {"listen": "127.0.0.1:2020", "config": {"persist": False}}
    for config in configs:
        assert config["logging"]["logs"]["default"]["level"] == "ERROR"
        for server in config["apps"]["http"]["servers"].values():
            assert server["automatic_https"] == {"disable": True}


def test_the_edge_waits_longer_than_the_balancer_may_take() -> None:
    route = web(1)
    edge = edge_config({route.name: route}, SETTINGS, inner_ports={route.name: 45000}, admin_port=2019)
    proxy = edge["apps"]["http"]["servers"][route_id(route.name)]["routes"][0]["handle"][0]
    # The balancer holds a request 4 tries (3 retries) x (0.2 s dial + 0.4 s response header) at
    # most; the edge gives it a second more.
    assert proxy["transport"]["response_header_timeout"] == "3400ms"
    assert "health_checks" not in proxy


def test_an_empty_state_has_no_servers() -> None:
    assert edge_config({}, SETTINGS, inner_ports={}, admin_port=2019)["apps"]["http"]["servers"] == {}


def test_the_same_routes_give_the_same_config() -> None:
    a, b = web(1, 2, name="ns/a", port=31001), web(3, name="ns/b", port=31002)
    ports = {"ns/a": 45001, "ns/b": 45002}
    one = balancer_config({"ns/a": a, "ns/b": b}, SETTINGS, inner_ports=ports, admin_port=1)
    other = balancer_config({"ns/b": b, "ns/a": a}, SETTINGS, inner_ports=ports, admin_port=1)
    assert one == other
    assert list(one["apps"]["http"]["servers"]) == [route_id("ns/a"), route_id("ns/b")]


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_route_ids_are_url_safe_and_distinct(one: str, other: str) -> None:
    assert re.fullmatch(r"route-[A-Za-z0-9_-]+", route_id(one))
    assert (route_id(one) == route_id(other)) == (one == other)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Upstream("c", "127.0.0.1", 80, -1), "weight -1 is negative"),
        (lambda: Upstream("c", "127.0.0.1", 0, 1), "port 0 is not in 1-65535"),
        (lambda: Upstream("c", "", 80, 1), "empty host"),
        (lambda: Route("", 80, ()), "a route needs a name"),
        (lambda: Route("a/b", 70000, ()), "listen port 70000"),
        (
            lambda: Route("a/b", 80, (Upstream("x", "127.0.0.1", 1, 1), Upstream("y", "127.0.0.1", 1, 1))),
            "two upstreams share an address",
        ),
    ],
    ids=["negative-weight", "port-zero", "no-host", "no-name", "port-too-big", "same-address"],
)
def test_bad_routes_are_refused(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_an_ipv6_region_is_dialled_in_brackets() -> None:
    assert Upstream("c", "::1", 8080, 1).dial == "[::1]:8080"
