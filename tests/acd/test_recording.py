"""Recordings: file naming, MixMonitor/PCI through the Recorder, and the retention purge against
the real call-log database and a real directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from callcenter.acd.recorder import Recorder, purge, relative_path
from callcenter.asterisk import names
from callcenter.cli import main
from callcenter.clock import FakeClock
from callcenter.errors import UnsafeValueError
from callcenter.reporting.records import CallEvent, RecordingRecord
from callcenter.store.recordings import PgPurgeStore
from tests.fakes import FakeAMI, RecordSink

DAY = 86400.0
NOW = 1_800_000_000.0  # 2027-01-15


def test_file_names_come_from_date_and_call_id_only() -> None:
    assert relative_path("c-1", NOW) == "2027/01/15/c-1-1.wav"
    assert relative_path("c-1", NOW, 2, "gsm") == "2027/01/15/c-1-2.gsm"
    for bad in ("../etc/passwd", "a/b", "", "x\r\ny", "-lead", "a b"):
        with pytest.raises(UnsafeValueError):
            relative_path(bad, NOW)


async def test_recorder_on_demand_pci_and_length(tmp_path: Path) -> None:
    ami, sink, clock = FakeAMI(), RecordSink(), FakeClock(start=NOW)
    rec = Recorder(ami, sink, clock, directory=tmp_path, pci_auto_resume=None)
    assert not rec.adopt_planned("c1", "PJSIP/agent-1", queue="q", agent_id="1001")  # none planned
    assert await rec.start(
        "c1", "PJSIP/agent-1", caller_channel="PJSIP/carrier-1", queue="q", agent_id="1001"
    )
    # No MixMonitor action (write class system): the file name on the agent leg, then both legs
    # redirected at once, the leg into cc-agent-leg (MixMonitor, Bridge) and the caller to hold.
    assert [a for a, _ in ami.sent] == [names.ACTION_SETVAR, names.ACTION_REDIRECT]
    (setvar,) = ami.actions(names.ACTION_SETVAR)
    assert setvar["Channel"] == "PJSIP/agent-1" and setvar["Variable"] == names.VAR_RECORDING_FILE
    assert setvar["Value"] == str(tmp_path / "2027/01/15/c1-1.wav")
    (redirect,) = ami.actions(names.ACTION_REDIRECT)
    assert (redirect["Channel"], redirect["Context"], redirect["Exten"], redirect["Priority"]) == (
        "PJSIP/agent-1",
        names.CTX_AGENT_LEG,
        "s",
        "1",
    )
    assert (redirect["ExtraChannel"], redirect["ExtraContext"]) == ("PJSIP/carrier-1", names.CTX_HOLD)
    assert (tmp_path / "2027/01/15").is_dir()
    assert not await rec.start(
        "c1", "PJSIP/agent-1", caller_channel="PJSIP/carrier-1", queue="q", agent_id="1001"
    )
    clock.advance(10)
    assert await rec.pci_pause("c1", by="1001")
    clock.advance(20)
    assert await rec.pci_resume("c1", by="1001")
    clock.advance(30)
    done = rec.call_ended("c1")
    assert done is not None and done.duration_seconds == 60.0 and done.pci_paused_seconds == 20.0
    kinds = [str(e.kind) for e in sink.of(CallEvent)]
    assert kinds == ["recording_start", "pci_pause", "pci_resume", "recording_stop"]
    assert [s for a in ami.actions(names.ACTION_MIXMONITOR_MUTE) for s in a["State"]] == ["1", "0"]


async def test_planned_recording_is_indexed_when_the_bridge_forms(tmp_path: Path) -> None:
    ami, sink, clock = FakeAMI(), RecordSink(), FakeClock(start=NOW)
    rec = Recorder(ami, sink, clock, directory=tmp_path)
    path = rec.plan("c2")
    assert path == str(tmp_path / "2027/01/15/c2-1.wav")
    assert rec.adopt_planned("c2", "PJSIP/agent-2", queue="q", agent_id="1")
    assert ami.sent == []  # the dialplan started it
    (r,) = sink.of(RecordingRecord)
    assert r.path == "2027/01/15/c2-1.wav"
    await rec.close()


def _touch(root: Path, rel: str, mtime: float) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"RIFF")
    os.utime(p, (mtime, mtime))
    return p


async def test_purge_deletes_what_retention_says_and_nothing_else(tmp_path: Path, db_dsn: str) -> None:
    root = tmp_path / "rec"
    old = relative_path("old-call", NOW - 100 * DAY)
    new = relative_path("new-call", NOW - 5 * DAY)
    orphan = relative_path("orphan", NOW - 95 * DAY)
    for rel in (old, new, orphan):
        _touch(root, rel, NOW)
    keep_foreign = _touch(root, str(Path(old).parent / "notes.txt"), NOW)
    outside = tmp_path / "precious.wav"
    outside.write_bytes(b"x")
    conn = await asyncpg.connect(db_dsn, timeout=10)
    try:
        rows = [
            ("old-call-1", old, NOW - 100 * DAY),
            ("new-call-1", new, NOW - 5 * DAY),
            ("evil-1", "../precious.wav", NOW - 200 * DAY),
            ("gone-1", relative_path("gone", NOW - 120 * DAY), NOW - 120 * DAY),
        ]
        for rid, path, started in rows:
            await conn.execute(
                "INSERT INTO recordings (recording_id, path, started_at, revision)"
                " VALUES ($1, $2, to_timestamp($3), 1)",
                rid,
                path,
                started,
            )
        report = await purge(root, 90, NOW, PgPurgeStore(db_dsn))
        assert report.deleted == [old]
        assert report.orphans == [orphan]
        assert report.refused == ["../precious.wav"]
        assert report.missing == [relative_path("gone", NOW - 120 * DAY)]
        assert not (root / old).exists() and not (root / orphan).exists()
        assert (root / new).exists() and keep_foreign.exists() and outside.exists()
        deleted = {
            r["recording_id"]
            for r in await conn.fetch("SELECT recording_id FROM recordings WHERE deleted_at IS NOT NULL")
        }
        assert deleted == {"old-call-1", "gone-1"}
        again = await purge(root, 90, NOW, PgPurgeStore(db_dsn))
        assert again.deleted == [] and again.orphans == []
    finally:
        await conn.close()


def test_purge_command_dry_run_then_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    now = time.time()
    rel = relative_path("cli-call", now - 40 * DAY)
    f = _touch(tmp_path, rel, now)
    args = ["recordings", "purge", "--no-db", "--directory", str(tmp_path), "--retention-days", "30"]
    assert main([*args, "--dry-run"]) == 0
    assert "would delete (not in the call log): " + rel in capsys.readouterr().out
    assert f.exists()
    assert main(args) == 0
    assert not f.exists()
    assert "1 unlisted deleted" in capsys.readouterr().out


async def test_purge_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    report = await asyncio.wait_for(purge(tmp_path / "none", 30, NOW, None), 10)
    assert report.deleted == report.orphans == []
