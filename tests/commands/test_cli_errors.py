"""Bad input on the command line gets a clear error naming what and where, exit status 2, no
traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["staffing", "--calls", "-5", "--interval", "1800", "--aht", "180"], "--calls must be >= 0"),
        (["staffing", "--calls", "100", "--target", "180/20"], "percent must be in (0, 100)"),
        (["demo", "--minutes", "-3"], "--minutes: must be in (0, 1440]"),
        (["demo", "--speed", "0"], "--speed: must be in (0, 1000]"),
        (["report", "--from", "garbage"], "--from: 'garbage' is not an ISO date"),
        (["validate", "/nonexistent-dir"], "not a directory"),
        (["sim", "--config", "/nonexistent-dir"], "extensions.conf: cannot read"),
    ],
)
def test_bad_arguments_are_named(argv: list[str], says: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "callcenter", "--run-dir", "/nonexistent-run-dir", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert says in out
    assert "Traceback" not in out
