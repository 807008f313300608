"""Helpers for the simulator's tests: official clients built from the simulator's kubeconfig, bounded waits.

Clients are configured only through ``kubernetes.config`` and ``Configuration`` (never monkeypatched);
``retries=False`` makes an outage show up on the first attempt, as a caller with its own retry policy sees it.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import yaml
from kubernetes import client, config

T = TypeVar("T")


@contextmanager
def api_client(kubeconfig: Path, context: str, *, token: bool = True) -> Iterator[client.ApiClient]:
    """An ApiClient for one context of ``kubeconfig``; without ``token`` it presents none."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=configuration)
    configuration.retries = False
    if not token:
        configuration.api_key = {}
        configuration.refresh_api_key_hook = None
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        api.close()


def ca_context(kubeconfig: Path, context: str) -> ssl.SSLContext:
    """An SSL context trusting the CA of ``context`` (for raw HTTP requests in tests)."""
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster = next(c for c in doc["contexts"] if c["name"] == context)["context"]["cluster"]
    data = next(c for c in doc["clusters"] if c["name"] == cluster)["cluster"]["certificate-authority-data"]
    return ssl.create_default_context(cadata=base64.b64decode(data).decode())


def kept_after_idle(url: str, context: ssl.SSLContext | None, authorization: str, *, idle: float) -> bool:
    """Whether a server answers a second ``GET /version`` on the same connection after ``idle`` seconds.

    ``http.client`` reconnects only when it closed the socket itself, so a connection the server
    closed while idle shows as a lost response (what pooled clients then meet), not a silent redial.
    """
    parts = urlsplit(url)
    connection = (
        http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context, timeout=10)
        if parts.scheme == "https"
        else http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    )
    try:
        for attempt in range(2):
            if attempt:
                time.sleep(idle)
            try:
                connection.request("GET", "/version", headers={"Authorization": authorization})
                response = connection.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                return False
            assert response.status == 200, response.status
        return True
    finally:
        connection.close()


def wait_until(check: Callable[[], T], *, within: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy (returned), for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}: last value {last!r}")
        time.sleep(interval)
        last = check()
    return last
