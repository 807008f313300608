"""Caddy's JSON configuration for the global load balancer: pure functions of routes and settings.

Two Caddy processes carry the traffic, because every change through Caddy's admin API reloads the
whole configuration of a process, and a reload closes the idle keep-alive connections of every
server in it (measured with Caddy 2.11.7: a sequential keep-alive client saw ``Remote end closed
connection`` right after each of 9 weight PATCHes out of 9). So:

* the **edge** holds the clients' connections: one server per route on ``traffic_address:listen_port``,
  proxying to that route's balancer server on loopback. Its configuration changes only when routes
  are added or removed;
* the **balancer** holds the weights: one server per route on ``127.0.0.1:<inner port>``, a
  ``reverse_proxy`` (its ``@id`` is :func:`~federation.traffic.routing.route_id`) over the regions
  with ``weighted_round_robin``, retries, passive health checks and short dial and response-header
  timeouts. Weight changes reload this process only; the edge's pooled connections to it are
  re-dialled by Go's transport (a GET it had sent on a connection being closed is retried), so
  clients keep their connections (measured: 28 weight changes under a keep-alive client, 0
  reconnects, 0 failed requests).

The balancer retries a failed try at once, on the next region its policy picks, at most
``traffic_retries`` times, with no ``try_duration`` and no ``try_interval``: Caddy (2.11) waits out the
pause between tries on the configuration's context, which a reload cancels, and every weight change
is a reload. A request whose try failed just before one got its error (``502`` for a refused region,
``504`` for a black hole) instead of its retry; measured by
``test_weight_changes_while_a_region_refuses_fail_no_request``: 4-5 ``502``s of ~800 requests with a
50 ms pause, none without. Caddy skips the pause only when ``try_interval`` is 0, and it makes that
250 ms whenever ``try_duration`` is set, so the bound on a request is the count of tries: each ends
within the dial or the response-header timeout, and one failure takes a region out of rotation
(``max_fails`` 1), so a retry goes to another region.

Caddy's ``weighted_round_robin`` refuses a total weight of 0 and has treated a weight of 0
differently across versions, so zero-weight upstreams are left out of the list; a route with no
upstream above 0 answers 503 from the balancer (``Retry-After: 1``) until a region comes back.

The admin API of both processes listens on 127.0.0.1 only, whatever the settings say, with its
configuration never persisted to disk (the federation holds the desired state) and logs at ERROR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.settings import TrafficSettings
from federation.traffic.routing import Route, join_host_port, route_id

LOOPBACK = "127.0.0.1"
GRACE_PERIOD = "5s"
"""How long the old servers may finish requests in flight after a reload or a stop. On a reload Caddy
does not wait for them, and cancels the old configuration's context at once, which forgets its
passive failure marks: see ``CaddyProvider._drain``."""
EDGE_TRY_DURATION = 2.0
"""Seconds the edge keeps re-dialling its balancer server: covers a balancer restart (~0.5 s)."""
NO_REGION_BODY = "no region serves this Service now\n"

JSON = dict[str, Any]


def duration(seconds: float) -> str:
    """Caddy's duration string, in whole milliseconds (``0.4`` is ``"400ms"``)."""
    return f"{max(round(seconds * 1000), 1)}ms"


def balancer_longest_request(settings: TrafficSettings) -> float:
    """The longest the balancer can hold a request: every try (the first and each retry) waiting
    out the dial timeout, then the response-header timeout."""
    return (settings.traffic_retries + 1) * (
        settings.traffic_dial_timeout + settings.traffic_response_header_timeout
    )


def admin_block(port: int) -> JSON:
    """The admin API on 127.0.0.1 only; the configuration is not autosaved to the user's home."""
    return {"listen": join_host_port(LOOPBACK, port), "config": {"persist": False}}


def _process(servers: JSON, *, admin_port: int, trusted_loopback: bool = False) -> JSON:
    if trusted_loopback:
        # The balancer's clients are the edge only: keep the X-Forwarded-For it sets.
        proxies = {"source": "static", "ranges": ["127.0.0.1/32", "::1/128"]}
        servers = {name: {**server, "trusted_proxies": proxies} for name, server in servers.items()}
    return {
        "admin": admin_block(admin_port),
        "logging": {"logs": {"default": {"level": "ERROR"}}},
        "apps": {"http": {"grace_period": GRACE_PERIOD, "servers": servers}},
    }


def _server(listen: str, handler: JSON) -> JSON:
    return {
        "listen": [listen],
        "automatic_https": {"disable": True},
        "routes": [{"handle": [handler]}],
    }


def balancer_handler(route: Route, settings: TrafficSettings) -> JSON:
    """The route's handler in the balancer (the object its ``@id`` names): a weighted
    ``reverse_proxy`` over the upstreams above weight 0, or a 503 when there is none."""
    serving = route.serving
    if not serving:
        return {
            "@id": route_id(route.name),
            "handler": "static_response",
            "status_code": 503,
            "headers": {"Retry-After": ["1"], "Content-Type": ["text/plain; charset=utf-8"]},
            "body": NO_REGION_BODY,
        }
    return {
        "@id": route_id(route.name),
        "handler": "reverse_proxy",
        "upstreams": [{"dial": u.dial} for u in serving],
        "load_balancing": {
            "selection_policy": {"policy": "weighted_round_robin", "weights": [u.weight for u in serving]},
            "retries": settings.traffic_retries,
        },
        "health_checks": {
            "passive": {
                "fail_duration": duration(settings.traffic_fail_duration),
                "max_fails": settings.traffic_max_fails,
                "unhealthy_status": list(settings.unhealthy_statuses()),
            }
        },
        "transport": {
            "protocol": "http",
            "dial_timeout": duration(settings.traffic_dial_timeout),
            "response_header_timeout": duration(settings.traffic_response_header_timeout),
        },
    }


def edge_handler(inner_port: int, settings: TrafficSettings) -> JSON:
    """The edge's proxy to one balancer server: retried while the balancer restarts, and given
    longer than the balancer's own worst case (every try waiting out both timeouts)."""
    balancer_worst = balancer_longest_request(settings)
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": join_host_port(LOOPBACK, inner_port)}],
        "load_balancing": {
            "retries": 20,
            "try_duration": duration(EDGE_TRY_DURATION),
            "try_interval": duration(0.05),
        },
        "transport": {
            "protocol": "http",
            "dial_timeout": duration(settings.traffic_dial_timeout),
            "response_header_timeout": duration(balancer_worst + 1.0),
        },
    }


def balancer_config(
    routes: Mapping[str, Route], settings: TrafficSettings, *, inner_ports: Mapping[str, int], admin_port: int
) -> JSON:
    """The balancing process: per route, a server on ``127.0.0.1:inner_ports[name]``."""
    servers = {
        route_id(name): _server(
            join_host_port(LOOPBACK, inner_ports[name]), balancer_handler(route, settings)
        )
        for name, route in sorted(routes.items())
    }
    return _process(servers, admin_port=admin_port, trusted_loopback=True)


def edge_config(
    routes: Mapping[str, Route], settings: TrafficSettings, *, inner_ports: Mapping[str, int], admin_port: int
) -> JSON:
    """The client-facing process: per route, a server on ``traffic_address:listen_port``."""
    servers = {
        route_id(name): _server(
            join_host_port(settings.traffic_address, route.listen_port),
            edge_handler(inner_ports[name], settings),
        )
        for name, route in sorted(routes.items())
    }
    return _process(servers, admin_port=admin_port)
