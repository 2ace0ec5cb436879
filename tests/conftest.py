"""Test-suite plumbing: a private PostgreSQL per session, a fresh database per test, a loop
exception handler that fails any test in which an exception reached the event loop unobserved, and
simulated time: a test that asks for ``autojump_clock`` (or is marked ``autojump``) runs on an event
loop whose clock jumps to the next sleeper's deadline whenever the loop would otherwise wait."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.clock import AutojumpClock, autojump_loop
from callcenter.store.migrate import migrate
from callcenter.store.pgcluster import PrivateCluster
from tests.traces import TRACES

pytest_plugins = ["pytester"]


# --------------------------------------------------------------------------- loop exceptions
_LOOP_ERRORS: list[dict[str, Any]] = []


def _record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    _LOOP_ERRORS.append(context)
    loop.default_exception_handler(context)


def _new_strict_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_record)
    return loop


# Real seconds the loop waits for outside I/O (PostgreSQL's replies) before the clock jumps.
AUTOJUMP_THRESHOLD = 0.002


def _autojump_factory(threshold: float) -> Any:
    def new_loop() -> asyncio.AbstractEventLoop:
        loop = autojump_loop(AutojumpClock(), threshold=threshold)
        loop.set_exception_handler(_record)
        return loop

    return new_loop


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--acceptance",
        action="store_true",
        default=False,
        help="also run the acceptance scenarios (marker acceptance; make acceptance)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Acceptance scenarios (minutes of SIPp calls on a real Asterisk) run only with
    ``--acceptance`` (``make acceptance``): a plain ``pytest`` or ``make test`` deselects them,
    whatever ``-m`` says, so setting ``ASTERISK_BIN`` for the ``asterisk`` tests does not pull
    them in."""
    if config.getoption("--acceptance"):
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("acceptance") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "autojump(threshold=AUTOJUMP_THRESHOLD): run on the autojump loop (implied by the "
        "autojump_clock fixture); threshold: real seconds of grace for outside I/O before a jump",
    )


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Every test loop reports exceptions that reach its handler (see the fixture below); a test
    on simulated time gets the autojump loop."""
    marker = item.get_closest_marker("autojump")
    if marker is not None or "autojump_clock" in getattr(item, "fixturenames", ()):
        threshold = marker.kwargs.get("threshold", AUTOJUMP_THRESHOLD) if marker else AUTOJUMP_THRESHOLD
        return {"autojump": _autojump_factory(threshold)}
    return {"strict": _new_strict_loop}


@pytest.fixture
async def autojump_clock() -> AutojumpClock:
    """The simulated clock of this test's loop: give it (or ``.starting_at(t)``) to the simulator
    and the controller alike; it jumps whenever every task waits."""
    clock = getattr(asyncio.get_running_loop(), "autojump_clock", None)
    if not isinstance(clock, AutojumpClock):
        pytest.fail("autojump_clock needs the autojump loop (see pytest_asyncio_loop_factories)")
    return clock


@pytest.fixture(autouse=True)
def _fail_on_unobserved_loop_exceptions() -> Iterator[None]:
    _LOOP_ERRORS.clear()
    yield
    gc.collect()  # "Task exception was never retrieved" is reported when the task is collected
    if _LOOP_ERRORS:
        errors = list(_LOOP_ERRORS)
        _LOOP_ERRORS.clear()
        lines = [f"{c.get('message')}: {c.get('exception')!r}" for c in errors]
        pytest.fail("exception(s) reached the event loop unobserved:\n" + "\n".join(lines))


# --------------------------------------------------------------------------- PostgreSQL
@dataclass
class PgServer:
    """Where test databases are made: the private cluster, or the server of $DATABASE_URL."""

    admin_dsn: str
    cluster: PrivateCluster | None

    def dsn_for(self, dbname: str) -> str:
        if self.cluster is not None:
            return self.cluster.dsn_for(dbname)
        # Same server as DATABASE_URL, other database.
        base, _, query = self.admin_dsn.partition("?")
        head, _, _old = base.rpartition("/")
        return f"{head}/{dbname}" + (f"?{query}" if query else "")


TEMPLATE_DB = "callcenter_test_template"
_counter = itertools.count()


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        for stmt in statements:
            await conn.execute(stmt)
    finally:
        await conn.close()


async def _migrate_db(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield PgServer(admin_dsn=url, cluster=None)
        return
    base = Path(tempfile.mkdtemp(prefix="cc-pg-", dir="/tmp"))
    cluster = PrivateCluster(base)
    try:
        cluster.start()
        yield PgServer(admin_dsn=cluster.dsn_for("postgres"), cluster=cluster)
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> str:
    """A migrated template database; each test clones it (no re-migration per test)."""
    name = f"{TEMPLATE_DB}_{os.getpid()}"
    asyncio.run(_admin(pg_server.admin_dsn, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
    asyncio.run(_migrate_db(pg_server.dsn_for(name)))
    return name


@pytest.fixture
def db_dsn(pg_server: PgServer, pg_template: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    name = f"cc_test_{os.getpid()}_{next(_counter)}"
    asyncio.run(_admin(pg_server.admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield pg_server.dsn_for(name)
    asyncio.run(_admin(pg_server.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_db_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh database with no migrations applied."""
    name = f"cc_empty_{os.getpid()}_{next(_counter)}"
    asyncio.run(_admin(pg_server.admin_dsn, f'CREATE DATABASE "{name}"'))
    yield pg_server.dsn_for(name)
    asyncio.run(_admin(pg_server.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def traces_dir() -> Path:
    assert TRACES.is_dir(), f"Asterisk traces not found at {TRACES}"
    return TRACES
