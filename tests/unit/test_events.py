"""The event recorder: Events as Kubernetes writes them, repeats folded into a count."""

from __future__ import annotations

import pytest

from federation.apimachinery.events import EventRecorder
from federation.apimachinery.kinds import EVENTS, NAMESPACES
from federation.apimachinery.memory import MemoryStorage
from federation.apimachinery.resources import Obj

pytestmark = pytest.mark.anyio

POD: Obj = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web-abcde", "namespace": "shop", "uid": "pod-uid", "resourceVersion": "7"},
}


async def storage_with(namespace: Obj) -> MemoryStorage:
    storage = MemoryStorage()
    await storage.create(NAMESPACES, namespace)
    return storage


async def test_a_repeat_bumps_count_and_last_timestamp() -> None:
    storage = await storage_with({"metadata": {"name": "shop"}})
    recorder = EventRecorder(storage, host="node-1", component="default-scheduler")
    for _ in range(3):
        await recorder.record(POD, type="Warning", reason="FailedScheduling", message="0/2 nodes")
    await recorder.record(POD, type="Normal", reason="Scheduled", message="assigned", component="kubelet")
    events = {e["reason"]: e for e in (await storage.list(EVENTS, "shop")).items}
    assert set(events) == {"FailedScheduling", "Scheduled"}
    failed = events["FailedScheduling"]
    assert failed["count"] == 3
    assert failed["firstTimestamp"] <= failed["lastTimestamp"]
    assert failed["source"] == {"component": "default-scheduler", "host": "node-1"}
    assert failed["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-abcde",
        "namespace": "shop",
        "uid": "pod-uid",
        "resourceVersion": "7",
    }
    assert failed["metadata"]["uid"]
    assert failed["metadata"]["creationTimestamp"]
    assert events["Scheduled"]["source"]["component"] == "kubelet"
    storage.cache.close()


async def test_nothing_is_written_into_a_terminating_or_missing_namespace() -> None:
    storage = await storage_with({"metadata": {"name": "shop", "deletionTimestamp": "2025-01-01T00:00:00Z"}})
    recorder = EventRecorder(storage, host="h")
    await recorder.record(POD, type="Normal", reason="Created", message="m", component="c")
    await recorder.record(
        {"metadata": {"name": "x", "namespace": "absent", "uid": "u"}},
        type="Normal",
        reason="Created",
        message="m",
        component="c",
    )
    assert (await storage.list(EVENTS, None)).items == []
    storage.cache.close()


async def test_at_most_capacity_events_are_kept_oldest_first_out() -> None:
    storage = await storage_with({"metadata": {"name": "shop"}})
    recorder = EventRecorder(storage, host="h", component="c", capacity=3)
    for i in range(5):
        await recorder.record(POD, type="Normal", reason="Tick", message=f"tick {i}")
    kept = sorted(e["message"] for e in (await storage.list(EVENTS, "shop")).items)
    assert kept == ["tick 2", "tick 3", "tick 4"]
    storage.cache.close()


async def test_a_repeat_counts_on_from_an_event_changed_elsewhere() -> None:
    # The recorder bumps the version it wrote last; an Event changed since (by a user, by another
    # recorder) is read again and counted on from there, and one deleted since is made anew.
    storage = await storage_with({"metadata": {"name": "shop"}})
    recorder = EventRecorder(storage, host="node-1", component="default-scheduler")
    await recorder.record(POD, type="Warning", reason="FailedScheduling", message="0/2 nodes")
    (event,) = (await storage.list(EVENTS, "shop")).items
    event["count"] = 10
    await storage.update(EVENTS, event)
    await recorder.record(POD, type="Warning", reason="FailedScheduling", message="0/2 nodes")
    (event,) = (await storage.list(EVENTS, "shop")).items
    assert event["count"] == 11
    await storage.delete(EVENTS, "shop", event["metadata"]["name"])
    await recorder.record(POD, type="Warning", reason="FailedScheduling", message="0/2 nodes")
    (event,) = (await storage.list(EVENTS, "shop")).items
    assert event["count"] == 1
    storage.cache.close()
