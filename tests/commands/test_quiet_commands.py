"""Commands that used to do nothing and exit 0: ``staffing --from-log`` without history and
``recordings purge`` looking in a directory that is not where the recordings are."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.centers import REPO
from tests.store.test_store_reports import _populate

pytestmark = pytest.mark.timeout(300)  # the commands run in new processes


def cli(dsn: str, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn}
    return subprocess.run(
        [sys.executable, "-m", "callcenter", "--run-dir", str(run_dir), *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


def test_staffing_from_an_empty_log_says_there_is_no_history(db_dsn: str, tmp_path: Path) -> None:
    res = cli(db_dsn, tmp_path / "run", "staffing", "--from-log", "--weeks", "4")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "no history" in res.stderr and "4 week(s) before" in res.stderr
    assert res.stdout.strip() == ""


def test_staffing_without_history_points_at_the_days_that_have_it(db_dsn: str, tmp_path: Path) -> None:
    asyncio.run(_populate(db_dsn, tmp_path / "spool"))  # calls on Tue 2023-11-14 and Fri 2023-11-17
    res = cli(db_dsn, tmp_path / "run", "staffing", "--from-log", "--date", "2023-11-01")
    assert res.returncode == 2
    assert "latest day with calls is 2023-11-17 (Friday): try --date 2023-11-24" in res.stderr
    ok = cli(db_dsn, tmp_path / "run", "staffing", "--from-log", "--date", "2023-11-24", "--weeks", "1")
    assert ok.returncode == 0, ok.stderr
    assert "09:00" in ok.stdout


def test_purge_uses_the_demos_recordings_under_the_run_dir(db_dsn: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    old = run_dir / "recordings" / "2020" / "01" / "02"
    old.mkdir(parents=True)
    (old / "c1-1001.wav").write_bytes(b"RIFF")
    res = cli(db_dsn, run_dir, "recordings", "purge", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert f"{run_dir / 'recordings'} (where the demo records" in res.stdout
    assert "would delete (not in the call log): 2020/01/02/c1-1001.wav" in res.stdout
    res = cli(db_dsn, run_dir, "recordings", "purge")
    assert res.returncode == 0, res.stderr
    assert not (old / "c1-1001.wav").exists()


def test_purge_names_a_missing_directory(db_dsn: str, tmp_path: Path) -> None:
    res = cli(db_dsn, tmp_path / "run", "recordings", "purge")
    assert res.returncode == 2
    assert "no recordings directory" in res.stderr and str(tmp_path / "run" / "recordings") in res.stderr
    missing = tmp_path / "nowhere"
    res = cli(db_dsn, tmp_path / "run", "recordings", "purge", "--directory", str(missing))
    assert res.returncode == 2
    assert f"no recordings directory {missing}" in res.stderr
