"""The member clusters as the controllers see them: a client and watches per registered Cluster.

For every Cluster in the federation, :class:`Fleet` keeps one :class:`Seat`: the member client built
from the Cluster and its credentials Secret (``spec.secretRef`` in ``federation-system``), and
informers in the member of what the federation manages there (Namespaces, Secrets, Services,
ReplicaSets and Pods selected by the ``federation.io/managed-by`` label) and of its Warning Events,
so that status, drift and trouble arrive as watch events, never by polling. A Cluster whose server
or credentials change gets a new client and new watches; a Cluster removed loses them. Bad
credentials are kept as :attr:`Seat.credentials_error`, for the health controller to show as a
condition on the Cluster (never a traceback).

Readiness is what the health controller last wrote on the Cluster (``status.conditions`` Ready), read
from the federation's own cache, so that every controller, and a controller restarted, agrees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from federation.apimachinery import (
    EVENTS,
    NAMESPACES,
    REPLICASETS,
    SECRETS,
    SERVICES,
    Handlers,
    Informer,
    Obj,
    ResourceType,
    meta,
)
from federation.apis import MANAGED_BY_LABEL, SYSTEM_NAMESPACE
from federation.controllers.desired import MANAGER
from federation.members import (
    Credentials,
    CredentialsError,
    Member,
    MemberClient,
    Timeouts,
    credentials_from_secret,
)
from federation.settings import ControllerSettings

log = logging.getLogger(__name__)

PODS: Final = ResourceType("", "v1", "Pod", "pods", "pod", True, "io.k8s.api.core.v1.Pod")
PROPAGATED_KINDS: Final = (NAMESPACES, SECRETS, SERVICES, REPLICASETS)
WATCHED_KINDS: Final = (*PROPAGATED_KINDS, PODS)
SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGER}"
WARNINGS: Final = "warnings"
"""The seat's informer of the member's Warning Events (all of them; folded when about our objects)."""
OWNER_INDEX: Final = "owner"
"""Pods by ``namespace/replicaset`` of their owner."""

MemberChanged = Callable[[str, ResourceType, Obj], None]
"""Called with (cluster, kind, object) for every change a member watch reports."""


def is_ready(cluster: Obj) -> bool:
    """Whether the health controller last found ``cluster`` Ready."""
    for cond in (cluster.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def is_cordoned(cluster: Obj) -> bool:
    return bool((cluster.get("spec") or {}).get("unschedulable"))


def _owner_values(pod: Obj) -> list[str]:
    m = pod.get("metadata") or {}
    return [
        f"{m.get('namespace', '')}/{ref.get('name', '')}"
        for ref in m.get("ownerReferences") or []
        if ref.get("kind") == "ReplicaSet"
    ]


@dataclass
class Seat:
    """One member cluster's client and watches."""

    name: str
    cluster: Obj
    credentials: Credentials | None = None
    credentials_error: str | None = None
    member: Member | None = None
    informers: dict[str, Informer] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    seen_at: float = field(default_factory=time.monotonic)
    """When this process first saw the Cluster."""
    ready_since: float = field(default_factory=time.monotonic)
    """When it last became Ready (as this process saw it): a plan older than that was made
    without it, and must not remove what it holds."""

    @property
    def judged(self) -> bool:
        """Whether the health controller has said Ready or Offline of it (ever, in any process)."""
        return any(
            c.get("type") == "Ready" for c in (self.cluster.get("status") or {}).get("conditions") or []
        )

    @property
    def ready(self) -> bool:
        return is_ready(self.cluster)

    @property
    def cordoned(self) -> bool:
        return is_cordoned(self.cluster)

    def informer(self, rt: ResourceType) -> Informer | None:
        return self.informers.get(rt.plural)

    def synced(self, rt: ResourceType) -> bool:
        informer = self.informers.get(rt.plural)
        return informer is not None and informer.synced

    def copy_of(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        """The member's copy as last watched (None: none, or no watch yet)."""
        informer = self.informers.get(rt.plural)
        return None if informer is None else informer.get(namespace if rt.namespaced else "", name)

    def peek(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        """The member's copy as last watched, not copied: read only (see ``Informer.peek``)."""
        informer = self.informers.get(rt.plural)
        return None if informer is None else informer.peek(namespace if rt.namespaced else "", name)

    def pods_of(self, namespace: str, replicaset: str) -> list[Obj]:
        """The pods of a member ReplicaSet as last watched, not copied: read only."""
        informer = self.informers.get(PODS.plural)
        return [] if informer is None else informer.peek_index(OWNER_INDEX, f"{namespace}/{replicaset}")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
        self.informers.clear()
        if self.member is not None:
            await self.member.close()
            self.member = None


class Fleet:
    """Every registered member cluster's :class:`Seat` (see the module docstring)."""

    def __init__(
        self,
        settings: ControllerSettings,
        *,
        on_member_change: MemberChanged,
        on_seat_change: Callable[[str], None],
        on_member_warning: Callable[[str, Obj], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_member_warning = on_member_warning
        self.seats: dict[str, Seat] = {}
        self._on_member_change = on_member_change
        self._on_seat_change = on_seat_change
        self._secrets: dict[str, Obj] = {}

    def get(self, name: str) -> Seat | None:
        return self.seats.get(name)

    def names(self) -> list[str]:
        return sorted(self.seats)

    # ------------------------------------------------------------------ following the federation

    def cluster_changed(self, cluster: Obj) -> None:
        name = str(meta(cluster).get("name", ""))
        seat = self.seats.get(name)
        if seat is None:
            seat = self.seats[name] = Seat(name, cluster)
            self._connect(seat)
            return
        old, seat.cluster = seat.cluster, cluster
        if is_ready(cluster) and not is_ready(old):
            seat.ready_since = time.monotonic()
        if (old.get("spec") or {}).get("server") != (cluster.get("spec") or {}).get("server") or (
            (old.get("spec") or {}).get("secretRef") != (cluster.get("spec") or {}).get("secretRef")
        ):
            self._reconnect(seat)

    def cluster_deleted(self, cluster: Obj) -> None:
        seat = self.seats.pop(str(meta(cluster).get("name", "")), None)
        if seat is not None:
            asyncio.get_running_loop().create_task(seat.close())
            self._on_seat_change(seat.name)

    def secret_changed(self, secret: Obj) -> None:
        m = meta(secret)
        if m.get("namespace") != SYSTEM_NAMESPACE:
            return
        name = str(m.get("name", ""))
        old = self._secrets.get(name)
        self._secrets[name] = secret
        if old is not None and old.get("data") == secret.get("data"):
            return
        for seat in self.seats.values():
            if self._secret_name(seat.cluster) == name:
                self._reconnect(seat)

    def secret_deleted(self, secret: Obj) -> None:
        m = meta(secret)
        if m.get("namespace") != SYSTEM_NAMESPACE:
            return
        name = str(m.get("name", ""))
        self._secrets.pop(name, None)
        for seat in self.seats.values():
            if self._secret_name(seat.cluster) == name:
                self._reconnect(seat)

    @staticmethod
    def _secret_name(cluster: Obj) -> str:
        return str(((cluster.get("spec") or {}).get("secretRef") or {}).get("name") or "")

    # ------------------------------------------------------------------ connecting to members

    def _reconnect(self, seat: Seat) -> None:
        old_tasks, old_member = list(seat.tasks), seat.member
        seat.tasks, seat.informers, seat.member = [], {}, None

        async def close_old() -> None:
            for task in old_tasks:
                task.cancel()
            for task in old_tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if old_member is not None:
                await old_member.close()

        asyncio.get_running_loop().create_task(close_old())
        self._connect(seat)

    def _connect(self, seat: Seat) -> None:
        secret_name = self._secret_name(seat.cluster)
        secret = self._secrets.get(secret_name) if secret_name else None
        try:
            seat.credentials = credentials_from_secret(seat.cluster, secret)
        except CredentialsError as err:
            seat.credentials, seat.credentials_error = None, str(err)
            log.warning("cluster %s: %s", seat.name, err)
            self._on_seat_change(seat.name)
            return
        seat.credentials_error = None
        timeouts = Timeouts(
            connect=self.settings.member_connect_timeout, read=self.settings.member_read_timeout
        )
        client = MemberClient(
            seat.name,
            seat.credentials,
            timeouts=timeouts,
            pool_size=self.settings.member_concurrency + 3 + len(WATCHED_KINDS),
        )
        seat.member = Member(client, concurrency=self.settings.member_concurrency)
        for rt in WATCHED_KINDS:
            informer = Informer(
                seat.member.source(rt, label_selector=SELECTOR),
                name=f"{seat.name}/{rt.plural}",
            )
            if rt is PODS:
                informer.add_index(OWNER_INDEX, _owner_values)
            informer.add_handlers(self._handlers(seat.name, rt))
            seat.informers[rt.plural] = informer
            seat.tasks.append(
                asyncio.get_running_loop().create_task(informer.run(), name=f"informer {informer.name}")
            )
        if self._on_member_warning is not None:
            warned = self._on_member_warning
            events = Informer(
                seat.member.source(EVENTS, field_selector="type=Warning"), name=f"{seat.name}/warnings"
            )
            events.add_handlers(
                Handlers(
                    on_add=lambda e, c=seat.name: warned(c, e),  # type: ignore[misc]
                    on_update=lambda _, e, c=seat.name: warned(c, e),  # type: ignore[misc]
                    read_only=True,
                )
            )
            seat.informers[WARNINGS] = events
            seat.tasks.append(
                asyncio.get_running_loop().create_task(events.run(), name=f"informer {events.name}")
            )
        self._on_seat_change(seat.name)

    def _handlers(self, cluster: str, rt: ResourceType) -> Handlers:
        def changed(obj: Obj) -> None:
            self._on_member_change(cluster, rt, obj)

        return Handlers(
            on_add=changed,
            on_update=lambda old, new: changed(new),
            on_delete=changed,
            read_only=True,
        )

    async def close(self) -> None:
        seats, self.seats = list(self.seats.values()), {}
        await asyncio.gather(*(seat.close() for seat in seats))
