"""Leader election: of the controller processes running against one federation, exactly one works.

Every controller process (``federation-controller`` replicas, ``fedctl up``) runs a
:class:`Leadership` over the lease ``federation-controllers`` in Postgres
(:class:`~federation.store.LeaseStore`). A standby reads when the lease expires, by the database's
clock, and tries to take it at that moment, so a leader killed with SIGKILL is replaced within
``FEDERATION_LEASE_DURATION`` of its last renewal. The leader renews every third of the lease
duration, from a thread of its own (:class:`~federation.store.LeaseRenewer`, so a busy event loop
never makes a renewal late), and runs the controllers (``lead``) only while it holds the lease:

* its writes to the federation go through a **fenced** storage
  (:meth:`~federation.store.PostgresStorage.fenced`): each write transaction checks in Postgres that
  this process holds the lease now, so a leader paused (SIGSTOP) past its lease cannot write a thing
  when it resumes;
* its writes to member clusters ask :meth:`Leadership.holds` first: true only until the lease would
  expire if the last renewal were the last, by this process's monotonic clock (which runs on while
  the process is stopped), minus a margin for the write's own time;
* a renewal refused (another holder) or not confirmed before the lease would expire ends the
  controllers at once; the process goes back to standby and tries again.

Every handover is an Event (reason ``LeaderElection`` on the Lease ``federation-system/
federation-controllers``, ``kubectl get events -n federation-system``), a log line and the metrics
``federation_controller_leader`` (1 while this process leads) and
``federation_leader_transitions_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from federation import metrics
from federation.apimachinery import ApiError, EventRecorder, Obj
from federation.apis import SYSTEM_NAMESPACE
from federation.store import Fence, LeaseRenewer, LeaseStore, PostgresStorage

log = logging.getLogger(__name__)

LEASE_NAME: Final = "federation-controllers"
WRITE_MARGIN: Final = 1.0
"""Seconds before the lease would expire after which no member write starts."""

Lead = Callable[[PostgresStorage, Callable[[], bool]], Coroutine[Any, Any, None]]
"""The leader's work: given the fenced storage and ``holds``, run until cancelled."""


def holder_identity() -> str:
    """This process, unique among the federation's controller processes."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _lease_object() -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": SYSTEM_NAMESPACE, "uid": LEASE_NAME},
    }


class Leadership:
    """Runs ``lead`` only while this process holds the lease (see the module docstring)."""

    def __init__(
        self,
        leases: LeaseStore,
        storage: PostgresStorage,
        *,
        duration: int,
        holder: str | None = None,
        name: str = LEASE_NAME,
    ) -> None:
        self.leases = leases
        self.storage = storage
        self.duration = duration
        self.holder = holder or holder_identity()
        self.name = name
        self.leading = False
        self._valid_until = 0.0

    def holds(self) -> bool:
        """Whether this process may still write to members (see the module docstring)."""
        return self.leading and time.monotonic() < self._valid_until - WRITE_MARGIN

    async def run(self, lead: Lead) -> None:
        """Stand by, lead while the lease is held, stand by again; until cancelled."""
        try:
            while True:
                await self._acquire()
                await self._lead(lead)
        finally:
            self._step_down()
            with contextlib.suppress(ApiError, OSError):
                await asyncio.shield(self.leases.release(self.name, self.holder))

    async def _acquire(self) -> None:
        waited = False
        while True:
            started = time.monotonic()
            try:
                if await self.leases.acquire(self.name, self.holder, duration=self.duration):
                    self._valid_until = started + self.duration
                    return
                state = await self.leases.read(self.name)
            except ApiError as err:
                log.warning("leader election: %s; trying again", err.message)
                await asyncio.sleep(1.0)
                continue
            if not waited and state is not None:
                log.info("standing by: %s leads the controllers", state.holder)
                waited = True
            remaining = state.remaining if state is not None else 0.0
            await asyncio.sleep(min(max(remaining, 0.0) + 0.05, self.duration / 3))

    async def _lead(self, lead: Lead) -> None:
        self.leading = True
        metrics.CONTROLLER_LEADER.set(1)
        metrics.LEADER_TRANSITIONS_TOTAL.inc()
        log.info("%s leads the controllers (lease %s, %d s)", self.holder, self.name, self.duration)
        loop = asyncio.get_running_loop()
        lost = asyncio.Event()
        why: list[str] = []

        def renewed(until: float) -> None:  # on the renewing thread: one float, written whole
            self._valid_until = until

        def gone(reason: str) -> None:  # on the renewing thread
            why.append(reason)
            loop.call_soon_threadsafe(lost.set)

        renewer = LeaseRenewer(
            self.leases.url,
            self.name,
            self.holder,
            duration=self.duration,
            valid_until=self._valid_until,
            on_renewed=renewed,
            on_lost=gone,
        )
        renewer.start()
        fenced = self.storage.fenced(Fence(self.name, self.holder))
        work: asyncio.Task[None] | None = None
        losing = asyncio.create_task(lost.wait(), name="lease lost")
        try:
            await self._record(fenced, f"{self.holder} became the leader")
            work = asyncio.create_task(lead(fenced, self.holds), name="controllers (leader)")
            while not work.done():
                await asyncio.wait(
                    {work, losing}, timeout=self.duration / 3, return_when=asyncio.FIRST_COMPLETED
                )
                if work.done():
                    break
                if lost.is_set() or time.monotonic() >= self._valid_until:
                    reason = why[0] if why else "no renewal succeeded before the lease lapsed"
                    log.warning(
                        "%s lost the lease %s (%s): the controllers stop", self.holder, self.name, reason
                    )
                    break
            if work.done():
                work.result()  # the controllers ended on their own: their error, if any
        finally:
            losing.cancel()
            await asyncio.to_thread(renewer.stop)
            if work is not None:
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
            self._step_down()
            await fenced.close()

    def _step_down(self) -> None:
        if self.leading:
            self.leading = False
            metrics.CONTROLLER_LEADER.set(0)

    async def _record(self, storage: PostgresStorage, message: str) -> None:
        recorder = EventRecorder(storage, host=socket.gethostname(), component="federation-controller")
        try:
            await recorder.record(_lease_object(), type="Normal", reason="LeaderElection", message=message)
        except ApiError as err:
            log.info("could not record the handover: %s", err.message)
