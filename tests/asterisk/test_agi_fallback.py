"""The process-AGI fallback script (pyst2), run as Asterisk runs it: a child process on pipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from callcenter.asterisk.agi import encode_env, parse_command

ENV = {
    "agi_request": "/opt/callcenter/fallback_agi",
    "agi_channel": "PJSIP/carrier-00000007",
    "agi_uniqueid": "1795420631.7",
    "agi_callerid": "5551230004",
    "agi_calleridname": 'Eve "$(rm -rf /)" Ünïcode',
    "agi_dnid": "18005550100",
    "agi_context": "cc-fallback",
    "agi_extension": "s",
}


def run_script(spool: Path, replies: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "callcenter.asterisk.fallback_agi", str(spool)],
        input=encode_env(ENV) + replies,
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_spools_the_call_and_sets_the_variable(tmp_path: Path) -> None:
    spool = tmp_path / "fallback.jsonl"
    done = run_script(spool, b"200 result=1\n")
    assert done.returncode == 0, done.stderr
    commands = [parse_command(line) for line in done.stdout.decode().splitlines()]
    assert commands == [["SET", "VARIABLE", "CC_FALLBACK_LOGGED", "1"]]
    (line,) = spool.read_text().splitlines()
    record = json.loads(line)
    assert record["uniqueid"] == "1795420631.7" and record["callerid"] == "5551230004"
    assert record["calleridname"] == ENV["agi_calleridname"].strip()
    assert record["reason"] == "controller_unreachable" and record["at"] > 0
    # A second call appends.
    assert run_script(spool, b"200 result=1\n").returncode == 0
    assert len(spool.read_text().splitlines()) == 2


def test_a_caller_who_hung_up_is_still_spooled(tmp_path: Path) -> None:
    spool = tmp_path / "fallback.jsonl"
    done = run_script(spool, b"200 result=-1\n")
    assert done.returncode == 0, done.stderr
    assert len(spool.read_text().splitlines()) == 1


def test_an_unwritable_spool_never_blocks_the_call(tmp_path: Path) -> None:
    done = run_script(tmp_path / "missing-dir" / "fallback.jsonl", b"")
    assert done.returncode == 0
    assert b"cannot write the spool" in done.stderr
