"""The command line's shape: ``--run-dir`` before or after the command, and no command prints
the command list."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from callcenter.cli import build_parser
from tests.centers import REPO


def test_no_command_prints_the_command_list() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "callcenter"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2
    for name in ("report", "staffing", "demo", "run", "agent", "recordings"):
        assert f"    {name} " in res.stdout, res.stdout


def test_run_dir_is_accepted_after_the_command_too() -> None:
    parser = build_parser()
    assert parser.parse_args(["--run-dir", "a", "report"]).run_dir == "a"
    assert parser.parse_args(["report", "--run-dir", "b"]).run_dir == "b"
    assert parser.parse_args(["--run-dir", "a", "db", "status", "--run-dir", "c"]).run_dir == "c"
    assert parser.parse_args(["recordings", "purge", "--run-dir", "d", "--dry-run"]).run_dir == "d"


def test_run_dir_after_the_command_is_the_one_used(tmp_path: Path) -> None:
    old = tmp_path / "recordings" / "2020" / "01" / "02"
    old.mkdir(parents=True)
    (old / "c1-1001.wav").write_bytes(b"RIFF")
    res = subprocess.run(
        [sys.executable, "-m", "callcenter", "recordings", "purge", "--no-db", "--dry-run",
         "--run-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "would delete (not in the call log): 2020/01/02/c1-1001.wav" in res.stdout
