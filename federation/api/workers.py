"""Serving the API from several processes: one parent, N workers on the parent's listening socket.

One Python process uses one core. With ``FEDERATION_WORKERS=N`` (``fedctl up --workers N``) the
parent does what must happen once (database, migrations, key, certificates, admin token,
kubeconfig, binding the socket; see :func:`federation.api.runtime.run`) and then a
:class:`Supervisor` keeps N worker processes serving that one socket: the kernel hands each new
connection to whichever worker accepts it first. Each worker has its own engine, storage, watch
feed and app; the storage guarantees (ordered versions, a watch feed from the ``changes`` table on
every process) are what make several processes on one database safe, exactly as for several
``federation-apiserver`` replicas.

What the supervisor guarantees:

* **Graceful stop.** SIGINT or SIGTERM to the parent sends SIGTERM to every worker (workers ignore
  SIGINT, which Ctrl-C sends to the whole process group: the parent alone decides), which finishes
  its in-flight requests (uvicorn's graceful shutdown) and closes its storage; a worker still
  running after :data:`STOP_GRACE_SECONDS` is killed. The parent returns only when every worker
  has exited, so nothing outlives it. Should the parent itself be killed, each worker notices and
  stops the same graceful way, and the last one removes the metrics directory.
* **Restarts, bounded.** A worker that exits on its own is logged and started again. More than
  :data:`RESTART_LIMIT` exits within :data:`RESTART_WINDOW_SECONDS` (a worker that cannot start:
  the database refuses it, say) stops everything with one error line and a non-zero exit.
* **What happens once, happens in one worker.** Each worker is started with the spec
  ``per_worker(spec, slot, restarted)`` gives it, so that work a server does once (resuming the
  namespace terminations a previous server left) is given to one worker only (see
  :func:`federation.api.runtime.worker_spec`).
* **One /metrics for the server.** The workers run in prometheus-client's multiprocess mode, with
  their files in a private directory the parent removes at the end
  (:func:`federation.metrics.shared_by_workers`), so any worker's ``/metrics`` sums them all.

Workers are *spawned* (a fresh interpreter that imports what it needs), as uvicorn's own
supervisor does, not forked. A fork would copy a parent that has already chosen prometheus-client's
single-process mode (it imported the library), that has run an event loop and a database engine for
the admin token, and that holds the embedded Postgres handle with its ``atexit`` stop hook; none of
that is safe or right to share. The cost is each worker importing the server again (about a second,
once) and its own copy of the loaded schemas in memory.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Generic, Protocol, TypeVar

from federation import metrics

log = logging.getLogger(__name__)

RESTART_LIMIT = 5
"""Worker exits tolerated within :data:`RESTART_WINDOW_SECONDS`; one more stops the server."""
RESTART_WINDOW_SECONDS = 60.0
STOP_GRACE_SECONDS = 15.0
"""How long a worker may take to stop: uvicorn's graceful shutdown (5 s) plus closing its storage."""

ORPHAN_CHECK_SECONDS = 5.0
"""How long a worker that finds no metrics directory at its start waits to learn that its parent
has ended (the watcher learns it at once) before taking it for another error."""

Spec = TypeVar("Spec")


class PerWorker(Protocol[Spec]):
    """The spec of the worker in ``slot`` (1..count), started for the first time or, ``restarted``,
    again after an exit."""

    def __call__(self, spec: Spec, slot: int, /, *, restarted: bool) -> Spec: ...


_SPAWN = multiprocessing.get_context("spawn")


def _worker_main(target: Callable[[Spec], None], spec: Spec) -> None:
    """The first thing a worker process runs (module level: spawn finds it by name)."""
    orphaned = _stop_with_parent()
    try:
        metrics.report_all_workers()
    except ValueError:
        # The metrics directory is gone: the parent was killed while this worker was starting,
        # and the other workers, stopping, removed it. The watcher says so and stops this one.
        if not orphaned.wait(ORPHAN_CHECK_SECONDS):
            raise
        return
    try:
        target(spec)
    finally:
        if orphaned.is_set():
            metrics.leave_orphaned()


def _stop_with_parent() -> threading.Event:
    """Stop this worker gracefully (SIGTERM to itself) if the parent ends without stopping it
    (it was killed): a worker must not serve on, unsupervised, holding the port. The event is set
    when that happened."""
    orphaned = threading.Event()
    parent = multiprocessing.parent_process()
    if parent is None:
        return orphaned

    def watch() -> None:
        wait([parent.sentinel])  # readable once the parent has exited
        orphaned.set()
        log.warning("the API server's parent process ended; stopping this worker (pid %d)", os.getpid())
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            # Not serving yet (still starting) or no longer: SIGTERM would end the process on the
            # spot, its metric files left behind. Leave as an orphan must, from here.
            metrics.leave_orphaned()
            logging.shutdown()
            os._exit(0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
    return orphaned


@contextlib.contextmanager
def _ignoring(sig: signal.Signals) -> Iterator[None]:
    previous = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(sig, previous)


def describe_exit(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor(Generic[Spec]):
    """Run ``target(spec)`` in ``count`` worker processes until SIGINT/SIGTERM (see the module
    docstring). ``spec`` is pickled into each worker; a socket in it arrives as the same socket.
    ``per_worker``: what each worker gets instead of ``spec`` itself."""

    def __init__(
        self,
        target: Callable[[Spec], None],
        spec: Spec,
        *,
        count: int,
        per_worker: PerWorker[Spec] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a supervisor needs at least one worker")
        self._target = target
        self._spec = spec
        self._per_worker = per_worker
        self._count = count
        self._workers: dict[int, BaseProcess] = {}
        """Running workers by slot (1..count): a restarted worker takes its predecessor's slot."""
        self._exits: collections.deque[float] = collections.deque()
        self._stopping = False
        self._metrics_dir = Path()

    def run(self) -> None:
        """Start the workers, keep them running until SIGINT/SIGTERM, stop them; raise
        ``SystemExit`` with a message when they keep exiting."""
        wake_reader, wake_writer = socket.socketpair()
        wake_writer.setblocking(False)
        failure: str | None = None
        with wake_reader, wake_writer, metrics.shared_by_workers() as directory:
            self._metrics_dir = directory
            with self._stop_on_signals(wake_writer):
                try:
                    for slot in range(1, self._count + 1):
                        self._start(slot, restarted=False)
                    failure = self._supervise(wake_reader)
                finally:
                    self._stop_all()
        if failure is not None:
            raise SystemExit(failure)

    @contextlib.contextmanager
    def _stop_on_signals(self, wake_writer: socket.socket) -> Iterator[None]:
        def stop(signum: int, frame: FrameType | None) -> None:
            self._stopping = True
            # Wakes the wait() below; a full buffer already holds a wake-up.
            with contextlib.suppress(BlockingIOError):
                wake_writer.send(b"\0")

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _start(self, slot: int, *, restarted: bool) -> None:
        spec = self._spec
        if self._per_worker is not None:
            spec = self._per_worker(spec, slot, restarted=restarted)
        process = _SPAWN.Process(
            target=_worker_main,
            args=(self._target, spec),
            name=f"federation-apiserver-worker-{slot}",
        )
        # Workers start with SIGINT ignored (an ignored signal stays ignored across exec, so from
        # their first instruction): Ctrl-C reaches the whole process group, and only this process
        # decides how workers stop. It ignores SIGINT too for the few milliseconds of the start.
        with _ignoring(signal.SIGINT):
            process.start()
        self._workers[slot] = process

    def _supervise(self, wake_reader: socket.socket) -> str | None:
        """Wait for a signal or a worker's exit; restart exited workers. The error that ends it, if any."""
        while not self._stopping:
            by_sentinel = {p.sentinel: slot for slot, p in self._workers.items()}
            ready = wait([*by_sentinel, wake_reader])
            if self._stopping:
                return None
            for item in ready:
                if item is wake_reader:
                    wake_reader.recv(64)
                    continue
                assert isinstance(item, int)
                failure = self._exited(by_sentinel[item])
                if failure is not None:
                    return failure
        return None

    def _exited(self, slot: int) -> str | None:
        process = self._workers.pop(slot)
        process.join()
        pid, how = process.pid, describe_exit(process.exitcode)
        self._forget(process)
        now = time.monotonic()
        self._exits.append(now)
        while self._exits and self._exits[0] < now - RESTART_WINDOW_SECONDS:
            self._exits.popleft()
        if len(self._exits) > RESTART_LIMIT:
            log.error("API worker %d (pid %s) %s", slot, pid, how)
            return (
                f"error: API workers ended {len(self._exits)} times within "
                f"{RESTART_WINDOW_SECONDS:.0f} s (the last one {how}); stopping the server"
            )
        log.warning("API worker %d (pid %s) %s; starting it again", slot, pid, how)
        self._start(slot, restarted=True)
        return None

    def _stop_all(self) -> None:
        for process in self._workers.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: finish in-flight requests, then exit
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self._workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
        for slot, process in self._workers.items():
            if process.is_alive():
                log.warning("API worker %d (pid %s) did not stop in time; killing it", slot, process.pid)
                process.kill()
                process.join()
            self._forget(process)
        self._workers.clear()

    def _forget(self, process: BaseProcess) -> None:
        if process.pid is not None:
            metrics.forget_worker(process.pid, self._metrics_dir)
        process.close()
