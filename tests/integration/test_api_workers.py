"""What several API worker processes rely on, below the e2e tests of ``fedctl up --workers``.

* Workers that start together on one database (each runs the app's start-up: initial namespaces,
  resuming namespace terminations) all start, and the result is as if one had.
* Of a server's workers, one resumes the namespace terminations a previous server left, so each runs
  once per server; a worker started again after an exit resumes them too.
* A supervisor whose workers keep ending gives up with one error line instead of looping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.api.app import INITIAL_NAMESPACES, create_app
from federation.api.runtime import Listener, Paths, Worker, worker_spec
from federation.api.workers import RESTART_LIMIT
from federation.apimachinery import NAMESPACES, ApiError, Registry, SchemaSet, Scheme, WriteOptions
from federation.apimachinery.kinds import SECRETS
from federation.apis import FEDERATION_KINDS, FEDERATION_SCHEMAS
from federation.settings import SecuritySettings, ServerSettings
from federation.store import PostgresStorage, TokenStore, make_engine
from federation.store.sealing import Sealer
from tests.conftest import MakeDatabase

WORKERS = 4


async def _exists(storage: PostgresStorage, namespace: str) -> bool:
    try:
        await storage.get(NAMESPACES, "", namespace)
    except ApiError as err:
        if err.code == 404:
            return False
        raise
    return True


async def _finished(storage: PostgresStorage, name: str, *, within: float = 20.0) -> None:
    """Until namespace ``name`` is gone (its termination finished), for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while await _exists(storage, name):
        assert time.monotonic() < deadline, f"the {name} namespace was not finished"
        await asyncio.sleep(0.1)


async def leave_a_terminating_namespace(url: str, sealer: Sealer) -> tuple[AsyncEngine, PostgresStorage]:
    """What a previous server left: namespace ``leftover``, Terminating, with a Secret still in it
    (its own termination never ran). The engine and a started storage on the database are returned."""
    engine = make_engine(url, pool_size=2)
    storage = PostgresStorage(engine, sealer)
    registry = Registry(
        Scheme(FEDERATION_KINDS), storage, SchemaSet(extra=FEDERATION_SCHEMAS), termination_delay=3600
    )
    await storage.start()
    await registry.create(NAMESPACES, "", {"metadata": {"name": "leftover"}}, WriteOptions())
    await registry.create(SECRETS, "leftover", {"metadata": {"name": "s"}}, WriteOptions())
    await registry.delete(NAMESPACES, "", "leftover")
    await registry.close()
    return engine, storage


@pytest.mark.anyio
async def test_workers_starting_together_on_one_database(make_database: MakeDatabase, sealer: Sealer) -> None:
    url = make_database()
    engine, storage = await leave_a_terminating_namespace(url, sealer)

    engines = [make_engine(url, pool_size=2) for _ in range(WORKERS)]
    apps: list[FastAPI] = [
        create_app(storage=PostgresStorage(own, sealer), tokens=TokenStore(own)) for own in engines
    ]
    async with contextlib.AsyncExitStack() as running:
        await asyncio.gather(*(running.enter_async_context(app.router.lifespan_context(app)) for app in apps))
        names = {item["metadata"]["name"] for item in (await storage.list(NAMESPACES, None)).items}
        assert set(INITIAL_NAMESPACES) <= names
        await _finished(storage, "leftover")
    await storage.close()
    for own in [engine, *engines]:
        await own.dispose()


def _workers(url: str, tmp_path: Path, count: int) -> list[Worker]:
    """The specs the supervisor of ``count`` workers starts them with."""
    sock = socket.socket()
    sock.close()  # nothing is served: only the specs matter
    listener = Listener(sock, "http", "127.0.0.1", 0, tls_files=None, ca_pem=None)
    base = Worker(url, Paths(tmp_path), ServerSettings(workers=count), SecuritySettings(), listener)
    return [worker_spec(base, slot, restarted=False) for slot in range(1, count + 1)]


def test_one_worker_of_a_server_resumes_terminations(tmp_path: Path) -> None:
    workers = _workers("postgresql://unused", tmp_path, WORKERS)
    assert [w.resumes_terminations for w in workers] == [True] + [False] * (WORKERS - 1)
    # A worker started again may find terminations its predecessor began: it resumes them too.
    assert worker_spec(workers[-1], WORKERS, restarted=True).resumes_terminations


@pytest.mark.anyio
async def test_a_leftover_termination_runs_once_per_server(
    make_database: MakeDatabase, sealer: Sealer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Four workers start on a database with a namespace a previous server left Terminating: one
    of them takes it up, and it is finished."""
    url = make_database()
    engine, storage = await leave_a_terminating_namespace(url, sealer)

    engines = [make_engine(url, pool_size=2) for _ in range(WORKERS)]
    apps: list[FastAPI] = [
        create_app(
            storage=PostgresStorage(own, sealer),
            tokens=TokenStore(own),
            resume_terminations=spec.resumes_terminations,
        )
        for own, spec in zip(engines, _workers(url, tmp_path, WORKERS), strict=True)
    ]
    caplog.set_level(logging.INFO, logger="federation.apimachinery.namespaces")
    async with contextlib.AsyncExitStack() as running:
        await asyncio.gather(*(running.enter_async_context(app.router.lifespan_context(app)) for app in apps))
        resumed = [
            r for r in caplog.records if r.getMessage() == "resuming the termination of namespace leftover"
        ]
        assert len(resumed) == 1, [r.getMessage() for r in caplog.records]
        await _finished(storage, "leftover")
    await storage.close()
    for own in [engine, *engines]:
        await own.dispose()


@pytest.mark.anyio
async def test_a_late_termination_spares_a_namespace_recreated_under_the_same_name(
    make_database: MakeDatabase, sealer: Sealer
) -> None:
    """Two processes terminate one namespace (the one that took the delete, and one that resumed
    it at start-up). The quicker finishes it, the namespace is created again and filled; the
    slower one's termination, when its turn comes, must leave the new namespace alone."""
    url = make_database()
    engines = [make_engine(url, pool_size=2) for _ in range(2)]
    slow_storage, quick_storage = (PostgresStorage(e, sealer) for e in engines)
    kinds = Scheme(FEDERATION_KINDS)
    slow = Registry(kinds, slow_storage, SchemaSet(extra=FEDERATION_SCHEMAS), termination_delay=1.5)
    quick = Registry(kinds, quick_storage, SchemaSet(extra=FEDERATION_SCHEMAS), termination_delay=0)
    opts = WriteOptions()
    await slow.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, opts)
    await slow.create(SECRETS, "shop", {"metadata": {"name": "old"}}, opts)
    await slow.delete(NAMESPACES, "", "shop")  # slow's termination waits 1.5 s
    await quick.resume_terminations()
    deadline = time.monotonic() + 10
    while await _exists(quick_storage, "shop"):
        assert time.monotonic() < deadline, "the namespace was not terminated"
        await asyncio.sleep(0.05)
    await quick.create(NAMESPACES, "", {"metadata": {"name": "shop"}}, opts)
    await quick.create(SECRETS, "shop", {"metadata": {"name": "new"}}, opts)
    await asyncio.wait_for(slow.namespaces.settled(), 20)  # slow's termination has had its turn
    assert await _exists(quick_storage, "shop")
    assert "deletionTimestamp" not in (await quick_storage.get(NAMESPACES, "", "shop"))["metadata"]
    assert [s["metadata"]["name"] for s in (await quick_storage.list(SECRETS, "shop")).items] == ["new"]
    for registry in (slow, quick):
        await registry.close()
    for storage in (slow_storage, quick_storage):
        await storage.close()
    for engine in engines:
        await engine.dispose()


def test_each_worker_gets_the_spec_of_its_slot() -> None:
    """The supervisor starts each worker with what ``per_worker`` makes of the spec for its slot,
    and says when a worker is started again. Each worker prints its spec and ends."""
    program = (
        "from federation.api.workers import Supervisor\n"
        "from tests.worker_targets import say\n"
        "def per_worker(spec, slot, *, restarted):\n"
        "    return f'{spec} {slot} ' + ('again' if restarted else 'first')\n"
        "Supervisor(say, 'worker', count=2, per_worker=per_worker).run()"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line for line in lines if line.endswith(" first")) == ["worker 1 first", "worker 2 first"]
    again = [line for line in lines if line.endswith(" again")]
    assert again, lines  # more exits than slots: some were started again
    assert set(again) <= {"worker 1 again", "worker 2 again"}


def test_workers_that_keep_ending_stop_the_supervisor() -> None:
    """Run as its own process, as ``fedctl up`` runs it; each worker is ``sys.exit(3)``."""
    program = (
        "import sys; from federation.api.workers import Supervisor; Supervisor(sys.exit, 3, count=2).run()"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[-1] == (
        f"error: API workers ended {RESTART_LIMIT + 1} times within 60 s "
        "(the last one exited with code 3); stopping the server"
    )
    assert sum("exited with code 3; starting it again" in line for line in lines) == RESTART_LIMIT
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 30
