"""The status controller: what the members report of a federated object, per cluster and summed.

``reconcile((plural, namespace, name))`` reads each member's copy as its watch last showed it and
writes:

* the Placement's ``status.clusters``: per cluster the desired replicas, the reported counts, when
  the member last reported a change (``lastObservedTime``), the last propagation error, and a state:
  ``Ready``, ``Progressing``, ``Pending`` (not there yet), ``Deleting``, ``Conflict``, ``Failed``, or
  ``Stale`` for a member that cannot be reached: its counts are the last seen, and never counted as
  healthy (karmada#2989 shows them as if current);
* a federated ReplicaSet's own ``status``: the sums over the reachable members (``replicas``,
  ``readyReplicas``, ``availableReplicas``), and ``observedGeneration`` once every cluster in the plan
  holds the copy of this generation and has acted on it;
* ``federation_replicaset_replicas{state=desired|ready}`` per cluster.

Both writes happen only when something changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from federation import metrics
from federation.apimachinery import Informer, Obj, Registry, Result, copy_json, meta
from federation.apis import DESIRED_HASH_ANNOTATION, PLACEMENTS, placement_name
from federation.controllers.desired import is_current, member_object
from federation.controllers.fleet import Fleet
from federation.controllers.placing import KINDS, FedKey, Placer
from federation.controllers.propagation import Propagator
from federation.controllers.routing import TrafficController
from federation.controllers.writing import update_status

REPORT_BATCH: Final = 0.5
"""Seconds a member's report of a copy waits before the object's status is summed again: the
reports of every member about one object, arriving together, make one status write, not one each."""


class StatusController:
    """Sums and per-cluster status (see the module docstring)."""

    def __init__(
        self,
        *,
        registry: Registry,
        fleet: Fleet,
        placer: Placer,
        propagator: Propagator,
        informers: Mapping[str, Informer],
        observed: Mapping[tuple[str, FedKey], str],
        placements: Informer,
        traffic: TrafficController | None = None,
    ) -> None:
        self.placements = placements
        self.traffic = traffic
        self.registry = registry
        self.fleet = fleet
        self.placer = placer
        self.propagator = propagator
        self.informers = informers
        self.observed = observed
        self._labelled: dict[FedKey, set[str]] = {}
        self._verdicts: dict[FedKey, dict[str, tuple[str, str, bool]]] = {}
        """Object -> cluster -> (the copy's resourceVersion, the desired digest, caught up?)."""

    async def reconcile(self, key: FedKey) -> Result:
        plural, namespace, name = key
        rt = KINDS[plural]
        federated = self.informers[plural].peek(namespace, name)  # read only
        plan = self.placer.plans.get(key)
        if federated is None or plan is None:
            if federated is None:
                self._forget_metrics(key)
            return Result()
        is_rs = rt.kind == "ReplicaSet"
        clusters = sorted(
            set(plan) | {seat.name for seat in self.fleet.seats.values() if seat.peek(rt, namespace, name)}
        )
        entries: list[dict[str, Any]] = []
        sums = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0}
        caught_up = True
        made: dict[int | None, Obj] = {}
        for cluster in clusters:
            seat = self.fleet.get(cluster)
            if seat is None:
                continue
            copy = seat.peek(rt, namespace, name)
            entry: dict[str, Any] = {"name": cluster}
            desired_obj = None
            if cluster in plan:  # the same for every cluster of the same share: made once
                share = plan[cluster]
                desired_obj = made.get(share)
                if desired_obj is None:
                    desired_obj = made[share] = member_object(federated, replicas=share)
            if is_rs:
                entry["desiredReplicas"] = int(plan.get(cluster) or 0)
            pair = (cluster, key)
            if copy is not None:
                status = copy.get("status") or {}
                if is_rs:
                    for field in sums:
                        entry[field] = int(status.get(field) or 0)
            if pair in self.observed:
                entry["lastObservedTime"] = self.observed[pair]
            if rt.kind == "Service" and self.traffic is not None:
                address = self.traffic.addresses.get(key, {}).get(cluster)
                weights = self.traffic.weights.get(key)
                if address:
                    entry["address"] = address
                if weights is not None and cluster in weights.weights:
                    entry["trafficWeight"] = weights.weights[cluster]
                    entry["trafficShare"] = f"{round(100 * weights.share(cluster))}%"
                    if cluster in weights.reasons:
                        entry["trafficReason"] = weights.reasons[cluster]
            current = False
            if copy is not None and desired_obj is not None:
                current = self._caught_up(key, cluster, copy, desired_obj)
            if not seat.ready:
                entry["state"] = "Stale"
            elif pair in self.propagator.conflicts:
                entry["state"] = "Conflict"
                entry["lastError"] = self.propagator.conflicts[pair]
            elif pair in self.propagator.errors:
                entry["state"] = "Failed"
                entry["lastError"] = self.propagator.errors[pair]
            elif desired_obj is None:
                entry["state"] = "Deleting"
            elif copy is None:
                entry["state"] = "Pending"
            elif current and (
                not is_rs
                or int((copy.get("status") or {}).get("readyReplicas") or 0) >= entry["desiredReplicas"]
            ):
                entry["state"] = "Ready"
            else:
                entry["state"] = "Progressing"
            if seat.ready and copy is not None and is_rs:
                for field in sums:
                    sums[field] += entry.get(field, 0)
            if desired_obj is not None and seat.ready and not current:
                caught_up = False
            if is_rs:
                ready = entry.get("readyReplicas", 0) if seat.ready else 0
                self._metric(key, cluster, entry["desiredReplicas"], ready)
            entries.append(entry)
        for cluster in self._labelled.get(key, set()) - set(clusters):
            self._remove_metric(key, cluster)
        placement_status: dict[str, Any] = {"clusters": entries}
        if is_rs:
            placement_status.update(sums)
        where = namespace or name
        pname = placement_name(rt.kind, name)
        cached = self.placements.peek(where, pname)  # read only
        if cached is None or cached.get("status") != placement_status:
            await update_status(
                self.registry,
                PLACEMENTS,
                where,
                pname,
                lambda p: _replace_status(p, placement_status),
                cached=cached,
            )
        if is_rs:
            generation = int(meta(federated).get("generation") or 1)

            def mutate(rs: Obj) -> bool:
                if meta(rs).get("uid") != meta(federated).get("uid"):
                    return False
                old = dict(rs.get("status") or {})
                new = {**old, **sums}
                new["fullyLabeledReplicas"] = sums["replicas"]
                if caught_up and int(meta(rs).get("generation") or 1) == generation:
                    new["observedGeneration"] = generation
                if new == old:
                    return False
                rs["status"] = new
                return True

            if mutate(copy_json(federated)):  # whether the cached object already shows it
                await update_status(self.registry, rt, namespace, name, mutate, cached=federated)
        return Result()

    def _caught_up(self, key: FedKey, cluster: str, copy: Obj, desired: Obj) -> bool:
        """:func:`_caught_up`, remembered per version of the copy and of the desired object (the
        comparison walks both objects; most reconciles see neither change)."""
        version = str(meta(copy).get("resourceVersion") or "")
        wanted = str(meta(desired)["annotations"][DESIRED_HASH_ANNOTATION])
        verdicts = self._verdicts.setdefault(key, {})
        known = verdicts.get(cluster)
        if known is not None and known[0] == version and known[1] == wanted and version:
            return known[2]
        verdict = _caught_up(copy, desired)
        verdicts[cluster] = (version, wanted, verdict)
        return verdict

    # ------------------------------------------------------------------ metrics

    def _metric(self, key: FedKey, cluster: str, desired: int, ready: int) -> None:
        _, namespace, name = key
        metrics.REPLICASET_REPLICAS.labels(namespace, name, cluster, "desired").set(desired)
        metrics.REPLICASET_REPLICAS.labels(namespace, name, cluster, "ready").set(ready)
        self._labelled.setdefault(key, set()).add(cluster)

    def _remove_metric(self, key: FedKey, cluster: str) -> None:
        _, namespace, name = key
        for state in ("desired", "ready"):
            metrics.remove_series(metrics.REPLICASET_REPLICAS, namespace, name, cluster, state)
        self._labelled.get(key, set()).discard(cluster)

    def _forget_metrics(self, key: FedKey) -> None:
        for cluster in list(self._labelled.get(key, set())):
            self._remove_metric(key, cluster)
        self._verdicts.pop(key, None)
        self._labelled.pop(key, None)
        metrics.remove_series(metrics.REPLICASET_UNSCHEDULABLE_REPLICAS, key[1], key[2])


def _replace_status(obj: Obj, status: dict[str, Any]) -> bool:
    if obj.get("status") == status:
        return False
    obj["status"] = status
    return True


def _caught_up(copy: Obj, desired: Obj) -> bool:
    """The copy holds this version of the desired object and the member has acted on it."""
    annotations = (copy.get("metadata") or {}).get("annotations") or {}
    if annotations.get(DESIRED_HASH_ANNOTATION) != meta(desired)["annotations"][DESIRED_HASH_ANNOTATION]:
        return False
    if not is_current(copy, desired):
        return False
    if "status" in copy and (copy.get("metadata") or {}).get("generation") is not None:
        observed = (copy.get("status") or {}).get("observedGeneration")
        return observed is None or int(observed) >= int(copy["metadata"]["generation"])
    return True
