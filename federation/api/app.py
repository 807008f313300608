"""The federation API server: the shared API machinery over Postgres, with token auth.

``create_app`` wires the federation's kinds (core kinds plus Cluster) to a
:class:`~federation.store.PostgresStorage`, authenticates bearer tokens against the hashed tokens
in Postgres (and an optional bootstrap admin token from settings), keeps ``federation-system``
(cluster credentials) to admins through :class:`~federation.api.policy.SystemNamespacePolicy`, and
makes sure the namespaces every federation has exist: ``default`` and ``federation-system``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from fastapi import FastAPI

from federation.api.policy import SystemNamespacePolicy
from federation.apimachinery import (
    NAMESPACES,
    AlreadyExists,
    ApiError,
    Authenticator,
    Principal,
    Registry,
    SchemaSet,
    Scheme,
    WriteOptions,
    build_app,
)
from federation.apis import FEDERATION_KINDS, FEDERATION_SCHEMAS, SYSTEM_NAMESPACE
from federation.store import PostgresStorage, TokenStore

log = logging.getLogger(__name__)

INITIAL_NAMESPACES = ("default", SYSTEM_NAMESPACE)
READY_TIMEOUT_SECONDS = 2.0
GC_THRESHOLDS = (50_000, 20, 10)
"""``gc.set_threshold`` of a serving process: a young collection per 50,000 net new containers."""


def version_info() -> dict[str, str]:
    try:
        ours = package_version("federation")
    except PackageNotFoundError:  # running from a source tree without metadata
        ours = "0.0.0"
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": f"v1.32.0-federation.{ours}",
        "platform": "linux/amd64",
        "goVersion": "python",
        "compiler": "cpython",
        "buildDate": "",
        "gitCommit": "",
        "gitTreeState": "clean",
    }


def token_authenticator(tokens: TokenStore, bootstrap_token: str | None) -> Authenticator:
    async def authenticate(presented: str | None) -> Principal | None:
        if not presented:
            return None
        if bootstrap_token and hmac.compare_digest(presented.encode(), bootstrap_token.encode()):
            return Principal("bootstrap", "admin")
        info = await tokens.authenticate(presented)
        return None if info is None else Principal(info.name, info.role)

    return authenticate


async def ensure_namespaces(registry: Registry) -> None:
    for name in INITIAL_NAMESPACES:
        with contextlib.suppress(AlreadyExists):
            await registry.create(NAMESPACES, "", {"metadata": {"name": name}}, WriteOptions())


async def _run_companion(
    companion: Callable[[PostgresStorage], Awaitable[None]], storage: PostgresStorage
) -> None:
    """The companion until cancelled; should it fail, the server goes on and says so once."""
    try:
        await companion(storage)
    except Exception:
        log.exception("%s failed; the API server goes on without it", getattr(companion, "name", "companion"))


def create_app(
    *,
    storage: PostgresStorage,
    tokens: TokenStore,
    bootstrap_token: str | None = None,
    metrics_open: bool = False,
    on_shutdown: list[Callable[[], Awaitable[None]]] | None = None,
    resume_terminations: bool = True,
    companion: Callable[[PostgresStorage], Awaitable[None]] | None = None,
) -> FastAPI:
    """The federation API server's app. ``resume_terminations``: finish the namespace terminations
    a previous server left (one process of a server does; see ``runtime.worker_spec``).
    ``companion``: run beside the server over its storage, from once the storage is started until
    the server stops (``fedctl up``'s controllers), as a task of the server's event loop."""
    scheme = Scheme(FEDERATION_KINDS)
    schemas = SchemaSet(extra=FEDERATION_SCHEMAS)
    policy = SystemNamespacePolicy()
    registry = Registry(scheme, storage, schemas, policy=policy)
    beside: list[asyncio.Task[None]] = []

    async def start() -> None:
        await storage.start()
        await ensure_namespaces(registry)
        if companion is not None:
            task = asyncio.get_running_loop().create_task(
                _run_companion(companion, storage), name="companion"
            )
            beside.append(task)
        # Everything loaded so far (schemas, modules) lives as long as the process: keep it out
        # of the collector's full passes, which otherwise stall requests for tens of ms.
        gc.freeze()
        # Collect far less often than Python's default (every 700 net new containers): each
        # create leaves dozens in the watch cache, and with the default the collector's passes
        # over young and cached objects cost about 7 % of the server's CPU per create.
        gc.set_threshold(*GC_THRESHOLDS)

    async def stop() -> None:
        for task in beside:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await storage.close()
        for hook in on_shutdown or []:
            await hook()

    async def ready() -> bool:
        """Ready while the database answers and the watch feed follows it."""
        try:
            await asyncio.wait_for(storage.current_version(), READY_TIMEOUT_SECONDS)
        except (ApiError, TimeoutError):
            return False
        return storage.feed_error is None

    return build_app(
        ready=ready,
        scheme=scheme,
        storage=storage,
        schemas=schemas,
        authenticator=token_authenticator(tokens, bootstrap_token),
        version=version_info(),
        title="federation-apiserver",
        metrics_open=metrics_open,
        on_startup=[start],
        on_shutdown=[stop],
        policy=policy,
        resume_terminations=resume_terminations,
    )
