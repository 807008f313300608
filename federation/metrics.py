"""Every Prometheus metric of the project, as named module constants.

Names and labels follow DESIGN.md; label values are bounded (cluster names, kinds, verbs, codes),
never object names of unbounded sets except where the design asks for them.

An API server of several worker processes (``FEDERATION_WORKERS``) reports for all of them at once
with prometheus-client's multiprocess mode: the parent makes a private directory
(:func:`shared_by_workers`) where each worker keeps its values in files of its own, and each
worker's ``/metrics`` sums those files (:func:`report_all_workers`). A Gauge added here needs a
``multiprocess_mode`` saying how the workers' values combine (``livesum``, ``max``, ...). With one
process nothing of this is used.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

API_REQUESTS_TOTAL = Counter(
    "federation_api_requests_total",
    "API requests served, by verb, resource and HTTP code.",
    ["verb", "resource", "code"],
)
API_REQUEST_DURATION_SECONDS = Histogram(
    "federation_api_request_duration_seconds",
    "Time to serve an API request (watches excluded).",
    ["verb", "resource"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client reads it once, when a process first imports the library."""


@contextlib.contextmanager
def shared_by_workers() -> Iterator[Path]:
    """In the parent of the API workers: a private directory for their metric files, named in the
    environment they inherit; the directory and the variable are gone on exit.

    Workers must be started inside it, as new interpreters (not forked from this one, whose
    prometheus-client already chose single-process mode)."""
    previous = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    with tempfile.TemporaryDirectory(prefix="federation-metrics-") as directory:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
        try:
            yield Path(directory)
        finally:
            if previous is None:
                os.environ.pop(MULTIPROCESS_DIR_VARIABLE, None)
            else:
                os.environ[MULTIPROCESS_DIR_VARIABLE] = previous


def report_all_workers() -> None:
    """In a worker: make ``/metrics`` (the default registry) report the sum over every worker.

    This process's own metric objects leave the registry (their values are in its file, which the
    multiprocess collector reads with the others), and so do the process, platform and GC
    collectors: they would describe one worker only, as if it were the server."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not directory:
        raise RuntimeError(f"{MULTIPROCESS_DIR_VARIABLE} is not set: not started as an API worker")
    ours = [value for value in globals().values() if isinstance(value, MetricWrapperBase)]
    for collector in [*ours, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR]:
        REGISTRY.unregister(collector)
    MultiProcessCollector(REGISTRY, path=directory)  # type: ignore[no-untyped-call]


def remove_series(metric: MetricWrapperBase, *labels: str) -> None:
    """Drop one labelled series of ``metric`` (a cluster or an object that is gone). In the API
    workers' multiprocess mode prometheus-client cannot remove a series (it warns): a gauge's is
    set to 0 there instead, and the series stays until the process ends."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        if isinstance(metric, Gauge):
            metric.labels(*labels).set(0)
        return
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def leave_orphaned() -> None:
    """In a worker whose parent was killed (so it cannot clean up): remove this process's metric
    files, and the directory once no worker has any left in it (the last worker out does)."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not directory:
        return
    for path in Path(directory).glob(f"*_{os.getpid()}.db"):
        path.unlink(missing_ok=True)
    try:
        os.rmdir(directory)
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.ENOENT):  # another worker is still in it / done
            raise


def forget_worker(pid: int, directory: Path) -> None:
    """In the parent, once worker ``pid`` has exited: drop its live gauge values (its counters and
    histograms stay in the sums, as a Prometheus counter must not go down)."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


RECONCILE_TOTAL = Counter(
    "federation_reconcile_total",
    "Reconciles run by a work queue, by controller (the queue's name) and result "
    "(success, requeue, error, temporary, permanent).",
    ["controller", "result"],
)
RECONCILE_DURATION_SECONDS = Histogram(
    "federation_reconcile_duration_seconds",
    "Time one reconcile took, by controller (the queue's name).",
    ["controller"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


# -- the controllers (DESIGN.md "Metrics"). Gauges are set by the one process that runs the
# controllers; "livemax" keeps a dead process's values out of a multiprocess sum.

CLUSTER_READY = Gauge(
    "federation_cluster_ready",
    "1 when the member cluster is Ready, 0 when Offline (as the health controller last decided).",
    ["cluster"],
    multiprocess_mode="livemax",
)
CLUSTER_PROBE_DURATION_SECONDS = Histogram(
    "federation_cluster_probe_duration_seconds",
    "Time one health probe of a member took (a failed probe counts up to its timeout).",
    ["cluster"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REPLICASET_REPLICAS = Gauge(
    "federation_replicaset_replicas",
    "Replicas of a federated ReplicaSet in one member cluster: desired (its share) or ready (reported).",
    ["namespace", "replicaset", "cluster", "state"],
    multiprocess_mode="livemax",
)
REPLICASET_UNSCHEDULABLE_REPLICAS = Gauge(
    "federation_replicaset_unschedulable_replicas",
    "Replicas of a federated ReplicaSet that no eligible cluster has room for.",
    ["namespace", "replicaset"],
    multiprocess_mode="livemax",
)
PROPAGATION_TOTAL = Counter(
    "federation_propagation_total",
    "Writes to member clusters, by cluster, kind and result (created, updated, deleted, error, conflict).",
    ["cluster", "kind", "result"],
)
PROPAGATION_DURATION_SECONDS = Histogram(
    "federation_propagation_duration_seconds",
    "Time one write to a member cluster took, by cluster and kind.",
    ["cluster", "kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
FAILOVERS_TOTAL = Counter(
    "federation_failovers_total",
    "Times a member cluster went Offline with replicas on it that were moved to other clusters.",
    ["cluster"],
)
DRIFT_CORRECTIONS_TOTAL = Counter(
    "federation_drift_corrections_total",
    "Member copies edited or deleted by hand that the federation put back, by cluster and kind.",
    ["cluster", "kind"],
)
WORKQUEUE_DEPTH = Gauge(
    "federation_workqueue_depth",
    "Keys waiting in a controller's work queue.",
    ["controller"],
    multiprocess_mode="livesum",
)
TRAFFIC_WEIGHT = Gauge(
    "federation_traffic_weight",
    "Weight of a region in a federated Service's global load balancer: its ready pods, 0 when it "
    "cannot serve (Offline, cordoned, stale, no address, not answering).",
    ["namespace", "service", "cluster"],
    multiprocess_mode="livemax",
)
CONTROLLER_LEADER = Gauge(
    "federation_controller_leader",
    "1 while this process leads the controllers (holds the lease), else 0.",
    multiprocess_mode="livemax",
)
LEADER_TRANSITIONS_TOTAL = Counter(
    "federation_leader_transitions_total",
    "Times this process became the controllers' leader.",
)
