"""The private PostgreSQL, migrations, the per-test database fixture, DATABASE_URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from callcenter.errors import MigrationError, PostgresNotFoundError
from callcenter.store.migrate import Migration, applied_versions, load_migrations, migrate
from callcenter.store.pgcluster import PrivateCluster, find_pg_bindir


async def test_migrations_are_idempotent(empty_db_dsn: str) -> None:
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        first = await migrate(conn)
        assert [m.version for m in first] == [m.version for m in load_migrations()]
        second = await migrate(conn)
        assert second == []
        assert await applied_versions(conn) == [m.version for m in load_migrations()]
    finally:
        await conn.close()


async def test_failing_migration_leaves_nothing_behind(empty_db_dsn: str) -> None:
    good = Migration(1, "good", "CREATE TABLE t_good (x int);")
    bad = Migration(2, "bad", "CREATE TABLE t_half (x int); INSERT INTO no_such_table VALUES (1);")
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        with pytest.raises(MigrationError) as info:
            await migrate(conn, [good, bad])
        assert info.value.version == 2
        assert "0002_bad.sql" in str(info.value)
        assert "42P01" in str(info.value)  # undefined_table, classified by SQLSTATE
        assert await applied_versions(conn) == [1]
        assert await conn.fetchval("SELECT to_regclass('t_good') IS NOT NULL")
        assert not await conn.fetchval("SELECT to_regclass('t_half') IS NOT NULL")
    finally:
        await conn.close()


async def test_changed_applied_migration_is_refused(empty_db_dsn: str) -> None:
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        await migrate(conn, [Migration(1, "one", "CREATE TABLE t1 (x int);")])
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, [Migration(1, "one", "CREATE TABLE t1 (y int);")])
    finally:
        await conn.close()


async def test_each_test_gets_an_isolated_database_a(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM controller_runs") == 0
        await conn.execute("INSERT INTO controller_runs (hostname) VALUES ('a')")
    finally:
        await conn.close()


async def test_each_test_gets_an_isolated_database_b(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        # The row written by the sibling test is not here: a fresh clone of the template.
        assert await conn.fetchval("SELECT count(*) FROM controller_runs") == 0
        assert await applied_versions(conn) == [m.version for m in load_migrations()]
    finally:
        await conn.close()


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callcenter", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


async def test_database_url_is_honoured(empty_db_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": empty_db_dsn}
    res = _cli("--run-dir", str(tmp_path / "run"), "db", "migrate", env=env)
    assert res.returncode == 0, res.stderr
    assert "DATABASE_URL" in res.stdout
    assert not (tmp_path / "run" / "pg").exists()  # no private cluster was made
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        assert await applied_versions(conn) == [m.version for m in load_migrations()]
    finally:
        await conn.close()


def _postgres_pids_for(datadir: Path) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [
        int(line.split()[0])
        for line in out.stdout.splitlines()[1:]
        if "postgres" in line and str(datadir) in line
    ]


# initdb, a server start and the migrations take about 8 s on an idle machine and several times
# that on a loaded one: the test waits on conditions (the "ready:" line, the process's exit) under
# generous bounded deadlines instead of the suite's 60 s per test.
@pytest.mark.timeout(600)
def test_ctrl_c_leaves_no_postgres_behind(tmp_path: Path) -> None:
    run_dir = Path("/tmp") / f"cc-ctrlc-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter", "--run-dir", str(run_dir), "db", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # blocks on the child's output, bounded by the test timeout
            seen.append(line)
            if line.startswith("ready:"):
                break
        assert any(s.startswith("ready:") for s in seen), "".join(seen)
        datadir = run_dir / "pg" / "data"
        assert _postgres_pids_for(datadir), "the private cluster should be running"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        rest = proc.communicate(timeout=300)[0]
        assert proc.returncode == 130, "".join(seen) + rest
        assert "private cluster stopped" in rest
        assert _postgres_pids_for(datadir) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        PrivateCluster(run_dir / "pg").destroy()


def test_a_killed_run_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    base = Path("/tmp") / f"cc-stale-{os.getpid()}"
    first = PrivateCluster(base)
    try:
        first.start()
        pid = first.running_pid()
        assert pid is not None
        # The next run finds a server left behind and restarts it cleanly.
        second = PrivateCluster(base)
        second.start()
        assert second.running_pid() is not None
        second.stop()
        assert second.running_pid() is None
        deadline = time.monotonic() + 10
        while _postgres_pids_for(base / "data") and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the process table
        assert _postgres_pids_for(base / "data") == []
    finally:
        PrivateCluster(base).destroy()


def test_missing_binaries_say_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    import callcenter.store.pgcluster as pgc

    monkeypatch.setattr(pgc, "Path", _NoSystemPath)
    with pytest.raises(PostgresNotFoundError, match="apt-get install postgresql"):
        find_pg_bindir()


class _NoSystemPath(type(Path())):  # type: ignore[misc]
    """A Path whose glob of /usr/lib/postgresql finds nothing (a machine without the server)."""

    def glob(self, pattern: str):  # type: ignore[no-untyped-def, override]
        return iter(())
