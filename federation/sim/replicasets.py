"""The ReplicaSet controller of a simulated cluster: pods that match ``spec.replicas``.

As Kubernetes' own: it creates and deletes Pods (owned through ``ownerReferences``) until the active
ones match ``spec.replicas``, deleting the least useful first (unscheduled, then pending, then not
ready, then newest), releases pods whose labels stop matching, and writes a status that tells the
truth: ``replicas``, ``fullyLabeledReplicas``, ``readyReplicas``, ``availableReplicas`` (honouring
``minReadySeconds``) and ``observedGeneration``. Pods of a deleted ReplicaSet are garbage-collected;
``foregroundDeletion`` and ``orphan`` finalizers are honoured. At most :data:`CREATE_BURST` pods are
created or deleted per reconcile (Kubernetes' ``burstReplicas``), the next burst no sooner than
:data:`BURST_INTERVAL` later, and the API is served between any two of its writes: a ReplicaSet of
2,147,483,647 replicas (found by the fuzzer) fills the cluster with Pending pods at a bounded pace
while the cluster keeps answering, as a real one does, instead of holding its event loop.

Each ReplicaSet is one key (namespace, name). The reconcile is level-based: it reads the ReplicaSet
and its pods fresh, writes the difference, and asks to be run again when ``minReadySeconds`` will
have passed. Its pods come from the storage's owner index (:class:`~federation.sim.podindex.PodIndex`),
exact as a list but only this ReplicaSet's: listing the namespace's pods on every pass was 47 % of the
simulator's time at 100 ReplicaSets of 1-3 replicas per namespace.

Writes: pods are created, deleted and released through the registry (uid, creation time, defaults,
namespace admission, finalizers), and so is the removal of a deletion finalizer (the registry then
deletes the ReplicaSet, as it does for any client). The status is written straight to the storage,
conditional on the version read: that is what ``/status`` stores for a status-only change, without
decoding the whole object again on every pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from federation.apimachinery import (
    REPLICASETS,
    AlreadyExists,
    Conflict,
    EventRecorder,
    Forbidden,
    LabelSelector,
    NotFound,
    Obj,
    Registry,
    Result,
    WatchEvent,
    WriteOptions,
    copy_json,
    dig,
    label_selector_from_object,
    labels_of,
    meta,
    name_of,
    namespace_alive,
    namespace_of,
    parse_rfc3339,
    rv_of,
)
from federation.sim.podindex import PodIndex
from federation.sim.pods import (
    PODS,
    condition,
    default_pod_spec,
    owned_by_replicaset,
    pod_active,
    pod_ready,
)

log = logging.getLogger(__name__)

CREATE_BURST = 500
"""At most this many pods are created or deleted per reconcile of one ReplicaSet (then it requeues)."""
BURST_INTERVAL = 1.0
"""Seconds between two bursts of one ReplicaSet (Kubernetes waits to see a burst's pods first)."""
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

ReplicaSetKey = tuple[str, str]
"""(namespace, name) of a ReplicaSet."""


def pod_available(pod: Obj, min_ready_seconds: int, now: float) -> tuple[bool, float | None]:
    """Whether ``pod`` is available, and if not yet, in how many seconds it will be."""
    if not pod_ready(pod):
        return False, None
    if min_ready_seconds <= 0:
        return True, None
    cond = condition(pod, "Ready") or {}
    since = parse_rfc3339(str(cond.get("lastTransitionTime") or ""))
    if since is None:
        return True, None
    left = since.timestamp() + min_ready_seconds - now
    return (left <= 0), (left if left > 0 else None)


class ReplicaSetController:
    """The ReplicaSet controller of one cluster (see the module docstring)."""

    def __init__(self, registry: Registry, *, pods: PodIndex, recorder: EventRecorder) -> None:
        self.registry = registry
        self.storage = registry.storage
        self.pods = pods
        self.recorder = recorder
        self._next_burst: dict[ReplicaSetKey, float] = {}
        """ReplicaSets whose last pass wrote a full burst -> the monotonic time the next one may start.
        Every pod created wakes its ReplicaSet at once (the watch), so this, not the requeue, paces
        the bursts (Kubernetes' ReplicaSet controller waits for its ``expectations`` instead)."""

    def _paced(self, key: ReplicaSetKey) -> float:
        """Note that ``key`` just wrote a full burst; the seconds until its next one."""
        self._next_burst[key] = time.monotonic() + BURST_INTERVAL
        return BURST_INTERVAL

    @staticmethod
    def keys_for_replicaset(event: WatchEvent) -> list[ReplicaSetKey]:
        return [(namespace_of(event.object), name_of(event.object))]

    @staticmethod
    def keys_for_pod(event: WatchEvent) -> list[ReplicaSetKey]:
        owner = owned_by_replicaset(event.object)
        return [] if owner is None else [(namespace_of(event.object), owner[0])]

    async def resync(self) -> list[ReplicaSetKey]:
        page = await self.storage.list(REPLICASETS, None)
        return [(namespace_of(rs), name_of(rs)) for rs in page.items]

    async def reconcile(self, key: ReplicaSetKey) -> Result:
        # The queue runs its keys back to back, and a pass that only writes a status never suspends
        # (the storage is in memory): without this, a thousand ReplicaSets woken at once would
        # hold the event loop, and the API with it, for the whole run.
        await asyncio.sleep(0)
        namespace, name = key
        try:
            rs: Obj | None = await self.storage.get(REPLICASETS, namespace, name)
        except NotFound:
            rs = None
        # Read, never changed (a release or a status write changes a copy), whatever the owner's uid.
        pods = self.pods.of_replicaset_readonly(namespace, name)
        if rs is None:
            self._next_burst.pop(key, None)
            # Garbage collection: the owner is gone, so are its pods.
            for pod in pods:
                await self._delete_quietly(namespace, name_of(pod))
                await asyncio.sleep(0)
            return Result()

        uid = str(meta(rs).get("uid"))
        owned: list[Obj] = []
        for pod in pods:
            owner = owned_by_replicaset(pod)
            if owner is None:
                continue
            if owner[1] != uid:
                await self._delete_quietly(namespace, name_of(pod))  # left by an earlier namesake
                continue
            owned.append(pod)

        if meta(rs).get("deletionTimestamp"):
            return await self._finish_deletion(rs, owned)

        try:
            selector = label_selector_from_object(dig(rs, "spec", "selector") or {})
        except ValueError:
            log.warning("replicaset %s/%s has an invalid selector; leaving it alone", namespace, name)
            return Result()
        owned = [p for p in owned if await self._keep_or_release(p, selector)]
        active = [p for p in owned if pod_active(p)]
        wanted = dig(rs, "spec", "replicas")
        replicas = int(wanted) if wanted is not None else 1
        diff = replicas - len(active)
        requeue: float | None = None
        wait = self._next_burst.get(key, 0.0) - time.monotonic() if diff else 0.0
        if wait > 0:
            requeue = wait  # the last pass wrote a full burst: the next one waits its turn
        elif diff > 0 and await namespace_alive(self.storage, namespace):
            for _ in range(min(diff, CREATE_BURST)):
                try:
                    created = await self._create_pod(rs)
                except (NotFound, Forbidden):
                    break  # the namespace is gone or terminating: its ReplicaSets go with it
                if created is not None:
                    active.append(created)
                await asyncio.sleep(0)  # the cluster's API is served between two creates
            if diff > CREATE_BURST:
                requeue = self._paced(key)
        elif diff < 0:
            doomed = deletion_order(active)[: min(-diff, CREATE_BURST)]
            for pod in doomed:
                if await self._delete_quietly(namespace, name_of(pod)):
                    await self.recorder.record(
                        rs,
                        type="Normal",
                        reason="SuccessfulDelete",
                        message=f"Deleted pod: {name_of(pod)}",
                        component="replicaset-controller",
                    )
                await asyncio.sleep(0)
            gone = {name_of(p) for p in doomed}
            active = [p for p in active if name_of(p) not in gone]
            if -diff > CREATE_BURST:
                requeue = self._paced(key)
        if wait <= 0 and abs(diff) <= CREATE_BURST:
            self._next_burst.pop(key, None)  # no burst was full

        status, available_in = self._status(rs, active)
        if available_in is not None:
            requeue = available_in if requeue is None else min(requeue, available_in)
        if status != (rs.get("status") or {}):
            updated = copy_json(rs)
            updated["status"] = status
            await self.storage.update(REPLICASETS, updated, precondition_rv=rv_of(rs))
        return Result(requeue_after=requeue)

    async def _keep_or_release(self, pod: Obj, selector: LabelSelector) -> bool:
        """Whether ``pod`` still belongs to its ReplicaSet; if its labels stopped matching, release it."""
        if selector.matches(labels_of(pod)):
            return True
        await self._release(pod)
        return False

    async def _release(self, pod: Obj) -> None:
        """Drop the controller reference of ``pod`` (it keeps running, owned by nobody)."""
        released = copy_json(pod)
        meta(released)["ownerReferences"] = [
            r for r in meta(pod).get("ownerReferences") or [] if not r.get("controller")
        ]
        if not meta(released)["ownerReferences"]:
            del meta(released)["ownerReferences"]
        with contextlib.suppress(NotFound, Conflict):  # gone or changed: the next pass sees it fresh
            await self.registry.update(PODS, namespace_of(pod), name_of(pod), released, WriteOptions())

    async def _finish_deletion(self, rs: Obj, owned: list[Obj]) -> Result:
        finalizers = list(meta(rs).get("finalizers") or [])
        namespace = namespace_of(rs)
        if "foregroundDeletion" in finalizers:
            for pod in owned:
                await self._delete_quietly(namespace, name_of(pod))
                await asyncio.sleep(0)
            finalizers.remove("foregroundDeletion")
        elif "orphan" in finalizers:
            for pod in owned:
                await self._release(pod)
                await asyncio.sleep(0)
            finalizers.remove("orphan")
        else:
            return Result()
        await self._set_finalizers(rs, finalizers)
        return Result()

    async def _set_finalizers(self, rs: Obj, finalizers: list[str]) -> None:
        """Through the registry, conditional on the version read: with the last finalizer gone,
        the registry deletes the ReplicaSet, as for any client."""
        updated = copy_json(rs)
        if finalizers:
            meta(updated)["finalizers"] = finalizers
        else:
            meta(updated).pop("finalizers", None)
        await self.registry.update(REPLICASETS, namespace_of(rs), name_of(rs), updated, WriteOptions())

    async def _create_pod(self, rs: Obj) -> Obj | None:
        """A new pod of ``rs``, through the registry (None: three names drawn were all taken).
        Raises NotFound or Forbidden when the namespace is gone or terminating."""
        for _ in range(3):
            pod = _pod_from_template(rs)
            try:
                created = (await self.registry.create(PODS, namespace_of(rs), pod, WriteOptions())).object
            except AlreadyExists:
                continue  # name taken: draw another suffix
            await self.recorder.record(
                rs,
                type="Normal",
                reason="SuccessfulCreate",
                message=f"Created pod: {name_of(created)}",
                component="replicaset-controller",
            )
            return created
        return None

    def _status(self, rs: Obj, active: list[Obj]) -> tuple[dict[str, Any], float | None]:
        spec = rs.get("spec") or {}
        template_labels = dig(spec, "template", "metadata", "labels") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        wall = time.time()
        ready = available = fully = 0
        soonest: float | None = None
        for pod in active:
            labels = labels_of(pod)
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            if pod_ready(pod):
                ready += 1
            ok, left = pod_available(pod, min_ready, wall)
            if ok:
                available += 1
            elif left is not None:
                soonest = left if soonest is None else min(soonest, left)
        status: dict[str, Any] = {
            k: v
            for k, v in (rs.get("status") or {}).items()
            if k
            not in (
                "replicas",
                "fullyLabeledReplicas",
                "readyReplicas",
                "availableReplicas",
                "observedGeneration",
            )
        }
        # As Kubernetes serialises it: zero counts other than ``replicas`` are omitted.
        status["replicas"] = len(active)
        for field, value in (
            ("fullyLabeledReplicas", fully),
            ("readyReplicas", ready),
            ("availableReplicas", available),
        ):
            if value:
                status[field] = value
        generation = meta(rs).get("generation")
        if generation is not None:
            status["observedGeneration"] = int(generation)
        return status, soonest

    async def _delete_quietly(self, namespace: str, name: str) -> bool:
        """Delete a pod through the registry (its finalizers hold); True if this call removed or
        marked it (False: it was already gone)."""
        try:
            await self.registry.delete(PODS, namespace, name)
        except NotFound:
            return False
        return True


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order a ReplicaSet deletes them (Kubernetes' ``ActivePods`` ranking, simplified)."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}
    newest_first = sorted(
        pods, key=lambda p: (str(meta(p).get("creationTimestamp", "")), name_of(p)), reverse=True
    )
    return sorted(
        newest_first,
        key=lambda p: (
            bool(dig(p, "spec", "nodeName")),
            phase_rank.get(str(dig(p, "status", "phase")), 0),
            pod_ready(p),
        ),
    )


def _pod_from_template(rs: Obj) -> Obj:
    m = meta(rs)
    template = copy_json(dig(rs, "spec", "template") or {})
    tm = template.get("metadata") or {}
    suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    pod_meta: dict[str, Any] = {
        "name": f"{m['name']}-{suffix}",
        "generateName": f"{m['name']}-",
        "namespace": m.get("namespace"),
        "labels": dict(tm.get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": m["name"],
                "uid": m.get("uid"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if tm.get("annotations"):
        pod_meta["annotations"] = dict(tm["annotations"])
    spec = template.get("spec") or {}
    default_pod_spec(spec)
    # uid, creationTimestamp and the initial status (phase, QoS class) are the registry's to set.
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}
