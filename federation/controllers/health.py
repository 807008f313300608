"""The cluster health controller: is each member cluster Ready or Offline, decided in seconds.

Every registered Cluster is probed on its own schedule (``/readyz``, else ``/healthz``), all of them
concurrently, each probe with its own timeout (``FEDERATION_PROBE_TIMEOUT``) on the member's own probe
thread, so a black-holed member delays nobody. The decision has thresholds, as KubeFed's settings
promise and do not keep (kubefed#1496): a Ready cluster becomes Offline after
``FEDERATION_FAILURE_THRESHOLD`` straight failed probes, an Offline one Ready after
``FEDERATION_SUCCESS_THRESHOLD`` straight good ones; one failed probe never flips a cluster. A
cluster with no verdict yet (just registered) takes the first threshold it reaches. Bad credentials
make a cluster Offline at once, with the reason in the condition (no probe could succeed).

What is written on the Cluster (``status``): the ``Ready`` condition (reason, message,
lastTransitionTime), the member's Kubernetes version, and its capacity from its nodes (allocatable
pods, schedulable nodes), refreshed every ``DETAILS_PERIOD`` while Ready. A transition is also an
Event on the Cluster and the ``federation_cluster_ready`` gauge; every probe's time is in
``federation_cluster_probe_duration_seconds``. The rest of the federation learns of a transition from
the Cluster's watch: placement drops an Offline cluster from every plan at once.

Level-based like every controller here: ``reconcile(cluster)`` probes once, decides, writes if the
verdict changed, and asks the queue to come back after the rest of the period. The version and
capacity are read beside the probes, in a task of their own: a member that stops answering while
they are read would otherwise hold up the probes that find it out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from federation import metrics
from federation.apimachinery import (
    ApiError,
    EventRecorder,
    Obj,
    Registry,
    Result,
    now_rfc3339,
)
from federation.apis import CLUSTERS
from federation.controllers.fleet import Fleet, is_ready
from federation.controllers.writing import update_status
from federation.members import Capacity, ProbeResult
from federation.settings import ControllerSettings

log = logging.getLogger(__name__)

DETAILS_PERIOD: Final = 10.0
"""Seconds between two reads of a Ready member's version and capacity."""


@dataclass
class Streak:
    failures: int = 0
    successes: int = 0
    details_at: float = 0.0
    last: ProbeResult | None = None


def ready_condition(cluster: Obj) -> dict[str, Any] | None:
    for cond in (cluster.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


class HealthController:
    """Probes and decides (see the module docstring); run its ``reconcile`` on a work queue."""

    def __init__(
        self,
        *,
        fleet: Fleet,
        registry: Registry,
        recorder: EventRecorder,
        settings: ControllerSettings,
    ) -> None:
        self.fleet = fleet
        self.registry = registry
        self.recorder = recorder
        self.settings = settings
        self.streaks: dict[str, Streak] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}
        """Per cluster, the read of its version and capacity in progress: beside the probes, never
        in their way (a member that stops answering mid-read holds up only the read)."""

    def forget(self, name: str) -> None:
        self.streaks.pop(name, None)
        reading = self._reading.pop(name, None)
        if reading is not None:
            reading.cancel()
        metrics.remove_series(metrics.CLUSTER_READY, name)

    async def close(self) -> None:
        tasks = list(self._reading.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reading.clear()

    async def reconcile(self, name: str) -> Result:
        seat = self.fleet.get(name)
        if seat is None:
            self.forget(name)
            return Result()
        started = time.monotonic()
        streak = self.streaks.setdefault(name, Streak())
        if seat.credentials_error is not None or seat.member is None:
            result = ProbeResult(
                ok=False,
                reason="InvalidCredentials",
                message=seat.credentials_error or "no client for this cluster",
                seconds=0.0,
            )
            streak.failures = max(streak.failures + 1, self.settings.failure_threshold)
            streak.successes = 0
        else:
            result = await seat.member.probe(timeout=self.settings.probe_timeout)
            metrics.CLUSTER_PROBE_DURATION_SECONDS.labels(name).observe(result.seconds)
            if result.ok:
                streak.successes += 1
                streak.failures = 0
            else:
                streak.failures += 1
                streak.successes = 0
        streak.last = result
        condition = ready_condition(seat.cluster)
        verdict: bool | None = None
        if result.ok and streak.successes >= self.settings.success_threshold and not is_ready(seat.cluster):
            verdict = True
        elif (
            not result.ok
            and streak.failures >= self.settings.failure_threshold
            and (
                condition is None
                or condition.get("status") != "False"
                or condition.get("reason") != result.reason
            )
        ):
            verdict = False
        now = time.monotonic()
        if (
            seat.member is not None
            and result.ok
            and (verdict or (is_ready(seat.cluster) and now >= streak.details_at))
            and name not in self._reading
        ):
            streak.details_at = now + DETAILS_PERIOD
            reading = asyncio.get_running_loop().create_task(
                self._read_details(name, result), name=f"cluster {name}: version and capacity"
            )
            self._reading[name] = reading
            reading.add_done_callback(functools.partial(self._done_reading, name))
        if verdict is not None:
            await self._write(name, result, verdict, None)
        metrics.CLUSTER_READY.labels(name).set(
            1 if (verdict if verdict is not None else is_ready(seat.cluster)) else 0
        )
        elapsed = time.monotonic() - started
        return Result(requeue_after=max(0.0, self.settings.probe_period - elapsed))

    def _done_reading(self, name: str, task: asyncio.Task[None]) -> None:
        if self._reading.get(name) is task:
            del self._reading[name]

    async def _read_details(self, name: str, result: ProbeResult) -> None:
        details = await self._details(name)
        if details is None:
            return
        try:
            await self._write(name, result, None, details)
        except ApiError as err:
            log.info("cluster %s: could not write version and capacity: %s", name, err.message)

    async def _details(self, name: str) -> tuple[str, Capacity] | None:
        seat = self.fleet.get(name)
        if seat is None or seat.member is None:
            return None
        try:
            return await seat.member.version(), await seat.member.capacity()
        except ApiError as err:
            log.info("cluster %s: could not read version and capacity: %s", name, err.message)
            return None

    async def _write(
        self, name: str, result: ProbeResult, verdict: bool | None, details: tuple[str, Capacity] | None
    ) -> None:
        stamp = now_rfc3339()

        def mutate(cluster: Obj) -> bool:
            before = repr(cluster.get("status"))
            status = cluster.setdefault("status", {})
            if verdict is not None:
                conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
                old = ready_condition(cluster)
                status_text = "True" if verdict else "False"
                transition = (
                    old["lastTransitionTime"]
                    if old and old.get("status") == status_text and old.get("lastTransitionTime")
                    else stamp
                )
                conditions.append(
                    {
                        "type": "Ready",
                        "status": status_text,
                        "reason": "ClusterReady" if verdict else result.reason,
                        "message": "the cluster answers its health probe" if verdict else result.message,
                        "lastTransitionTime": transition,
                        "observedGeneration": int((cluster.get("metadata") or {}).get("generation") or 1),
                    }
                )
                status["conditions"] = conditions
            if details is not None:
                version, capacity = details
                status["kubernetesVersion"] = version
                status["capacity"] = {
                    "pods": capacity.allocatable_pods,
                    "nodes": capacity.schedulable_nodes,
                }
            return repr(status) != before

        seat = self.fleet.get(name)
        was_ready = seat is not None and is_ready(seat.cluster)
        had_verdict = seat is not None and ready_condition(seat.cluster) is not None
        written = await update_status(self.registry, CLUSTERS, "", name, mutate)
        if written is None or verdict is None or (verdict == was_ready and had_verdict):
            return
        if verdict:
            log.info("cluster %s is Ready", name)
            await self.recorder.record(
                written, type="Normal", reason="ClusterReady", message=f"cluster {name} is Ready"
            )
        else:
            log.warning("cluster %s is Offline: %s", name, result.message)
            await self.recorder.record(
                written,
                type="Warning",
                reason="ClusterOffline",
                message=f"cluster {name} is Offline: {result.reason}: {result.message}",
            )
