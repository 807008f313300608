"""Capacity as a client sees it: ready replicas up to the free pod slots, Pending pods, capacity changes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from federation.sim import Simulator
from tests.sim_support import api_client, wait_until

REGION = "europe-west1"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    kubeconfig = tmp_path_factory.mktemp("capacity") / "sim.kubeconfig"
    with Simulator([REGION], kubeconfig=kubeconfig, nodes=2, pods_per_node=3, start_delay=0.1) as running:
        yield running


def ready(apps: client.AppsV1Api, name: str, ns: str) -> int:
    return apps.read_namespaced_replica_set(name, ns).status.ready_replicas or 0


def test_more_replicas_than_slots_then_freeing_and_adding_capacity(sim: Simulator) -> None:
    with api_client(sim.kubeconfig, REGION) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": "cap"}})
        body = {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 8,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                },
            },
        }
        apps.create_namespaced_replica_set("cap", body)
        wait_until(lambda: ready(apps, "web", "cap") == 6)
        status = apps.read_namespaced_replica_set("web", "cap").status
        assert (status.replicas, status.fully_labeled_replicas, status.available_replicas) == (8, 8, 6)
        assert status.observed_generation == 1

        pending = core.list_namespaced_pod("cap", field_selector="status.phase=Pending").items
        assert len(pending) == 2
        assert all(p.spec.node_name is None for p in pending)
        scheduled = {c.type: c for c in pending[0].status.conditions}["PodScheduled"]
        assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
        events = core.list_namespaced_event(
            "cap", field_selector=f"involvedObject.name={pending[0].metadata.name},reason=FailedScheduling"
        ).items
        assert len(events) == 1
        assert events[0].type == "Warning"
        assert "Too many pods" in events[0].message

        # Freeing slots: scaling down deletes the Pending pods first, then frees one more slot.
        apps.patch_namespaced_replica_set_scale("web", "cap", {"spec": {"replicas": 5}})
        wait_until(lambda: len(core.list_namespaced_pod("cap").items) == 5)
        wait_until(lambda: ready(apps, "web", "cap") == 5)
        assert core.list_namespaced_pod("cap", field_selector="status.phase=Pending").items == []

        # A region losing capacity: one node left, three slots.
        sim.set_nodes(REGION, 1)
        wait_until(lambda: len(core.list_node().items) == 1)
        wait_until(lambda: ready(apps, "web", "cap") == 3)
        assert len(core.list_namespaced_pod("cap", field_selector="status.phase=Pending").items) == 2

        # And gaining it back.
        sim.set_nodes(REGION, 3)
        wait_until(lambda: ready(apps, "web", "cap") == 5)
        nodes = core.list_node().items
        assert sorted(n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes) == [
            f"{REGION}-a",
            f"{REGION}-b",
            f"{REGION}-c",
        ]
        core.delete_namespace("cap")


def test_a_replicaset_of_two_billion_replicas_leaves_the_cluster_answering(sim: Simulator) -> None:
    """Found by the fuzzer: ``replicas: 2147483647`` used to hold the cluster's event loop with pod
    creates, so its API stopped answering (and SIGTERM went unheard). Now pods come in bursts of
    500 at most, a burst per second, with the API served in between."""
    with api_client(sim.kubeconfig, REGION) as api:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": "huge"}})
        rs = {
            "metadata": {"name": "huge"},
            "spec": {
                "replicas": 2**31 - 1,
                "selector": {"matchLabels": {"app": "huge"}},
                "template": {
                    "metadata": {"labels": {"app": "huge"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
        started = time.monotonic()
        apps.create_namespaced_replica_set("huge", rs)
        slowest = 0.0
        for _ in range(15):  # bounded: about 3 s of reads while the bursts run
            asked = time.monotonic()
            core.list_namespace(_request_timeout=10)
            slowest = max(slowest, time.monotonic() - asked)
            time.sleep(0.2)
        assert slowest < 2.0, f"the API took {slowest:.2f} s to list namespaces"
        pods = len(core.list_namespaced_pod("huge", _request_timeout=30).items)
        bursts = (time.monotonic() - started) // 1.0 + 1
        assert 0 < pods <= 500 * bursts, f"{pods} pods after {bursts:.0f} bursts"
        apps.delete_namespaced_replica_set("huge", "huge")
        core.delete_namespace("huge")
        wait_until(lambda: "huge" not in {n.metadata.name for n in core.list_namespace().items}, within=60)
