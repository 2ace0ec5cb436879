"""`callcenter report` as an operator types it: the terminal's width, the center's time zone, the
latest day with calls when today has none, an unknown queue named."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.centers import REPO
from tests.store.test_store_reports import _populate

pytestmark = pytest.mark.timeout(300)  # each test runs the command a few times in new processes


@pytest.fixture
def logged(db_dsn: str, tmp_path: Path) -> str:
    asyncio.run(_populate(db_dsn, tmp_path / "spool"))  # 2023-11-14, 09:00-10:30 UTC
    return db_dsn


def report(dsn: str, cwd: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn, "COLUMNS": str(columns), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "callcenter", "--run-dir", str(cwd / "run"), "report", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False,
    )  # fmt: skip


def test_an_empty_default_window_shows_the_latest_day_with_calls(logged: str, tmp_path: Path) -> None:
    res = report(logged, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "no calls today" in res.stdout
    said = " ".join(res.stdout.split())
    assert "showing 2023-11-17, the latest day with calls" in said
    # 7 sales + 1 support on the 14th (the callback not counted), caller A again on the 17th
    assert "Days with calls: 2023-11-17 (1 call), 2023-11-14 (8 calls)" in said
    lines = res.stdout.splitlines()
    assert any(ln.split()[:3] == ["09:00", "sales", "1"] for ln in lines if ln.strip()), res.stdout
    assert all(len(ln) <= 80 for ln in lines), res.stdout


def test_the_table_fits_the_terminal_and_wide_shows_every_kpi(logged: str, tmp_path: Path) -> None:
    window = ("--from", "2023-11-14", "--to", "2023-11-15", "--interval", "15")
    for by in ("queue", "agent"):
        res = report(logged, tmp_path, *window, "--by", by, columns=80)
        assert res.returncode == 0, res.stderr
        assert "…" not in res.stdout, res.stdout  # nothing cut
        assert max(len(ln) for ln in res.stdout.splitlines()) <= 80, res.stdout
    wide = report(logged, tmp_path, *window, "--wide", columns=80)
    assert "longest_wait_s" in wide.stdout and "…" not in wide.stdout


def test_intervals_are_in_the_time_zone_asked_for(logged: str, tmp_path: Path) -> None:
    utc = report(logged, tmp_path, "--from", "2023-11-14", "--to", "2023-11-15")
    assert "2023-11-14 UTC" in utc.stdout and "09:00" in utc.stdout
    ny = report(logged, tmp_path, "--from", "2023-11-14", "--to", "2023-11-15", "--tz", "America/New_York")
    assert "America/New_York" in ny.stdout
    assert "04:00" in ny.stdout and "09:00" not in ny.stdout, ny.stdout  # 09:00 UTC is 04:00 EST
    # Without --tz, the center's zone from its YAML.
    center = report(logged, tmp_path, "--from", "2023-11-14", "--config", str(REPO / "dialplans"))
    assert center.returncode == 0, center.stderr
    assert "America/New_York" in center.stdout and "04:00" in center.stdout, center.stdout


def test_an_unknown_queue_is_named(logged: str, tmp_path: Path) -> None:
    res = report(logged, tmp_path, "--queue", "nosuch", "--from", "2023-11-14")
    assert res.returncode == 2
    assert "unknown queue 'nosuch'" in res.stderr and "sales" in res.stderr
    known = report(logged, tmp_path, "--queue", "support", "--from", "2023-11-14")
    assert known.returncode == 0 and "support" in known.stdout and "sales" not in known.stdout


def test_a_window_without_calls_says_which_days_have_them(logged: str, tmp_path: Path) -> None:
    res = report(logged, tmp_path, "--from", "2023-11-01", "--to", "2023-11-02")
    assert res.returncode == 0
    said = " ".join(res.stdout.split())
    assert "no calls in 2023-11-01 UTC; days with calls: 2023-11-17 (1 call), 2023-11-14 (8 calls)" in said
