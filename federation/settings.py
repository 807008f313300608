"""Settings, one pydantic-settings class per concern, all read from ``FEDERATION_*`` variables.

They are built once in ``main()`` (or ``fedctl up``) and passed down; nothing reads the
environment elsewhere. Validators refuse values that would leave a server open: a short bootstrap
token, an empty encryption key, plain HTTP on a non-loopback address.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PREFIX = SettingsConfigDict(env_prefix="FEDERATION_", extra="ignore")


class DatabaseSettings(BaseSettings):
    """Where objects are stored. No URL: the embedded Postgres in the data dir."""

    model_config = _PREFIX
    database_url: SecretStr | None = None
    data_dir: Path = Path("./data")
    watch_window: int = 10_000
    """How many recent changes each API server keeps for resuming watches (older: 410 Gone)."""

    @field_validator("watch_window")
    @classmethod
    def _positive_window(cls, value: int) -> int:
        if value < 10:
            raise ValueError("FEDERATION_WATCH_WINDOW must be at least 10")
        return value


class SecuritySettings(BaseSettings):
    """Keys and tokens. The encryption key protects Secret data and cluster credentials at rest."""

    model_config = _PREFIX
    encryption_key: SecretStr | None = None
    encryption_key_file: Path | None = None
    bootstrap_token: SecretStr | None = None

    @field_validator("bootstrap_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("FEDERATION_BOOTSTRAP_TOKEN must be at least 16 characters")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _non_empty_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("FEDERATION_ENCRYPTION_KEY must not be empty")
        return value

    def key_material(self) -> str | None:
        """The key text from the variable or the file; None when neither is set."""
        if self.encryption_key is not None:
            return self.encryption_key.get_secret_value()
        if self.encryption_key_file is not None:
            return self.encryption_key_file.read_text()
        return None


class ServerSettings(BaseSettings):
    """How the API server listens."""

    model_config = _PREFIX
    listen_address: str = "127.0.0.1"
    port: int = 6443
    insecure_http: bool = False
    """Serve plain HTTP: only behind a TLS-terminating proxy."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    metrics_open: bool = False
    """Serve /metrics without a token (for a Prometheus inside the trust boundary)."""
    workers: int = 1
    """Processes serving the API on the one port (each with its own database pool and watch feed)."""

    @field_validator("port")
    @classmethod
    def _port_range(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ValueError("FEDERATION_PORT must be between 0 and 65535")
        return value

    @field_validator("workers")
    @classmethod
    def _at_least_one_worker(cls, value: int) -> int:
        if value < 1:
            raise ValueError("FEDERATION_WORKERS must be at least 1")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("FEDERATION_TLS_CERT_FILE and FEDERATION_TLS_KEY_FILE go together")
        return self

    @model_validator(mode="after")
    def _plain_http_on_loopback_only(self) -> ServerSettings:
        """Plain HTTP carries bearer tokens in clear: it is for a TLS-terminating proxy on the same
        host, so the server then listens on a loopback address only (``0.0.0.0`` is every address)."""
        if self.insecure_http and not self.is_loopback():
            raise ValueError(
                "FEDERATION_INSECURE_HTTP is refused on a non-loopback FEDERATION_LISTEN_ADDRESS: "
                "serve TLS, or listen on 127.0.0.1 or ::1 behind a TLS-terminating proxy"
            )
        return self

    def is_loopback(self) -> bool:
        """Whether the listen address reaches this host only (127.0.0.0/8, ::1, ``localhost``)."""
        try:
            address = ipaddress.ip_address(self.listen_address)
        except ValueError:
            return self.listen_address == "localhost"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped.is_loopback
        return address.is_loopback


class ControllerSettings(BaseSettings):
    """The controllers: cluster health, placement, propagation, status (DESIGN.md "Cluster health and
    failover"). The defaults make a refused member Offline within 3 s and a black-holed one within 5 s,
    and never flip a cluster on one failed probe: with a probe every second and a 1 s timeout, the
    second straight failure comes at most ~2 s (refused) or ~3 s (black-holed) after the fault."""

    model_config = _PREFIX
    controllers: bool = True
    """Run the controllers in ``fedctl up`` (off: the API only, for a separate federation-controller)."""
    probe_period: float = 1.0
    """Seconds between the starts of two probes of one cluster."""
    probe_timeout: float = 1.0
    failure_threshold: int = 2
    """Straight failed probes that make a Ready cluster Offline."""
    success_threshold: int = 2
    """Straight good probes that make an Offline cluster Ready again."""
    member_connect_timeout: float = 2.0
    member_read_timeout: float = 5.0
    member_concurrency: int = 8
    """Calls in flight to one member at a time (each member has its own threads)."""
    unschedulable_grace: float = 10.0
    """Seconds a member may report replicas it cannot schedule before its spare room counts as full
    and the rest spill to other clusters."""
    resync_period: float = 60.0
    """Every object is looked at again this often, a safety net under the watches."""
    event_retention: float = 3600.0
    """Seconds the federation keeps an Event after its last occurrence (Kubernetes: 1 h)."""
    lease_duration: int = 10
    """Seconds the controllers' lease lasts without renewal: a standby takes over within it."""
    controller_metrics_address: str = "127.0.0.1"
    controller_metrics_port: int = 8080
    """Where ``federation-controller`` serves /metrics, /healthz and /readyz (0: a free port)."""

    @field_validator("probe_period", "probe_timeout", "member_connect_timeout", "member_read_timeout")
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if not 0.05 <= value <= 600:
            raise ValueError("must be between 0.05 and 600 seconds")
        return value

    @field_validator("failure_threshold", "success_threshold", "member_concurrency")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError("must be between 1 and 1000")
        return value

    @field_validator("unschedulable_grace", "resync_period", "event_retention")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("lease_duration")
    @classmethod
    def _lease_range(cls, value: int) -> int:
        if not 2 <= value <= 300:
            raise ValueError("FEDERATION_LEASE_DURATION must be between 2 and 300 seconds")
        return value

    @field_validator("controller_metrics_port")
    @classmethod
    def _metrics_port_range(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ValueError("FEDERATION_CONTROLLER_METRICS_PORT must be between 0 and 65535")
        return value


class TrafficSettings(BaseSettings):
    """The global load balancer (DESIGN.md "Traffic"): which provider, where the global addresses listen,
    and how a request that meets a dead or black-holed region is retried elsewhere.

    The defaults are the measured ones: a 400 ms response-header timeout and a 200 ms dial timeout fail
    a black-holed or refused region fast, one failure takes it out of rotation for ``fail_duration``
    (passive health), and up to ``retries`` retries send the request to another region at once, so
    a client sees ~0.5 s instead of its own timeout (``retries + 1`` tries at the very worst). An
    upstream slower than the response-header timeout counts as failed: raise it for slow
    applications.

    The global addresses listen on loopback unless ``traffic_allow_external`` says the operator means
    to serve other hosts (``0.0.0.0`` or a LAN address): the load balancer forwards to every
    federated Service, so opening it is a decision, not a default. Caddy's admin API is always on
    127.0.0.1, whatever is set here."""

    model_config = _PREFIX
    traffic_provider: Literal["caddy", "none"] = "caddy"
    """``caddy``: the embedded load balancer; ``none``: weights through the API and metrics only."""
    traffic_address: str = "127.0.0.1"
    """The IP address the global addresses listen on (written into Services' status)."""
    traffic_allow_external: bool = False
    """Allow a non-loopback ``traffic_address``."""
    traffic_ports: str = "31000-31999"
    """The range ``low-high`` the controller allocates the global addresses' ports from."""
    caddy_admin_port: int = 0
    """Caddy's admin API ports on 127.0.0.1: N for the front process, N+1 for the balancing one
    (0: free ports)."""
    traffic_retries: int = 3
    """At most this many retries per request, each at once on the next region the balancer picks.
    There is no pause between tries and no ``try_duration``: Caddy's pause ends when its
    configuration is reloaded, which every weight change does, and a request failing at that moment
    got the error instead of its retry (:mod:`federation.traffic.caddyconfig`)."""
    traffic_dial_timeout: float = 0.2
    traffic_response_header_timeout: float = 0.4
    traffic_fail_duration: float = 2.0
    """Seconds a failed region stays out of rotation (passive health)."""
    traffic_max_fails: int = 1
    """Failures within fail_duration that take a region out."""
    traffic_unhealthy_status: str = "5xx"
    """Responses that count as a failure: codes and classes, comma-separated (``5xx``, ``429,503``)."""

    @field_validator("traffic_address")
    @classmethod
    def _an_ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("FEDERATION_TRAFFIC_ADDRESS must be an IP address") from None
        return value

    @field_validator("caddy_admin_port")
    @classmethod
    def _admin_ports(cls, value: int) -> int:
        if not 0 <= value <= 65534:
            raise ValueError("FEDERATION_CADDY_ADMIN_PORT must be between 0 and 65534 (it uses N and N+1)")
        return value

    @field_validator(
        "traffic_dial_timeout",
        "traffic_response_header_timeout",
        "traffic_fail_duration",
    )
    @classmethod
    def _traffic_seconds(cls, value: float) -> float:
        if not 0.01 <= value <= 600:
            raise ValueError("must be between 0.01 and 600 seconds")
        return value

    @field_validator("traffic_retries", "traffic_max_fails")
    @classmethod
    def _traffic_count(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError("must be between 1 and 100")
        return value

    @model_validator(mode="after")
    def _traffic_checks(self) -> TrafficSettings:
        if not (self.traffic_address_is_loopback() or self.traffic_allow_external):
            raise ValueError(
                "FEDERATION_TRAFFIC_ADDRESS is not a loopback address: set "
                "FEDERATION_TRAFFIC_ALLOW_EXTERNAL=true to serve the global addresses to other hosts"
            )
        ports = self.traffic_port_range()
        self.unhealthy_statuses()
        admin = {self.caddy_admin_port, self.caddy_admin_port + 1} if self.caddy_admin_port else set()
        if any(port in ports for port in admin):
            raise ValueError(
                "FEDERATION_CADDY_ADMIN_PORT (N and N+1) must be outside FEDERATION_TRAFFIC_PORTS"
            )
        return self

    def traffic_address_is_loopback(self) -> bool:
        address = ipaddress.ip_address(self.traffic_address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped.is_loopback
        return address.is_loopback

    def traffic_port_range(self) -> range:
        """The listen ports the controller may allocate (``31000-31999`` is ``range(31000, 32000)``)."""
        low, sep, high = self.traffic_ports.strip().partition("-")
        try:
            first, last = int(low), int(high if sep else low)
        except ValueError:
            raise ValueError("FEDERATION_TRAFFIC_PORTS must be a range like 31000-31999") from None
        if not 1 <= first <= last <= 65535:
            raise ValueError("FEDERATION_TRAFFIC_PORTS must be low-high within 1-65535, low <= high")
        return range(first, last + 1)

    def unhealthy_statuses(self) -> tuple[int, ...]:
        """Caddy's ``unhealthy_status`` list: a code (``503``) as is, a class (``5xx``) as its digit."""
        found: list[int] = []
        for raw in self.traffic_unhealthy_status.split(","):
            item = raw.strip().lower()
            if not item:
                continue
            if len(item) == 3 and item.endswith("xx") and item[0] in "12345":
                found.append(int(item[0]))
            elif item.isdigit() and 100 <= int(item) <= 599:
                found.append(int(item))
            else:
                raise ValueError(
                    f"FEDERATION_TRAFFIC_UNHEALTHY_STATUS: {raw.strip()!r} is neither a status code nor "
                    "a class like 5xx"
                )
        return tuple(found)


def describe_error(err: ValidationError) -> str:
    """One line per problem naming the variable, never the value (it may be a secret)."""
    lines = []
    for problem in err.errors(include_input=False, include_url=False):
        message = str(problem.get("msg", "invalid value")).removeprefix("Value error, ")
        variables = [f"FEDERATION_{str(part).upper()}" for part in problem.get("loc", ()) if str(part)]
        if variables and not any(v in message for v in variables):
            message = f"{', '.join(variables)}: {message}"
        lines.append(message)
    return "; ".join(lines)
