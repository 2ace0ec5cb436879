"""Files holding call data are mode 0600 in 0700 directories, whatever the umask: the call-log
spool and its ``rejected/`` rows, recordings and their date folders."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.acd.recorder import Recorder
from callcenter.clock import FakeClock, RealClock
from callcenter.reporting.records import CallRecord, Disposition
from callcenter.store.spool import Spool, private_dir, write_private
from callcenter.store.writer import CallLogWriter
from tests.fakes import FakeAMI, RecordSink
from tests.store.test_store_writer import T0, start, stop

NOW = 1_800_000_000.0  # 2027-01-15


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The most permissive umask: any 0700/0600 seen is the code's doing, not the umask's."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_the_spool_directory_its_segments_and_checkpoint_are_private(tmp_path: Path) -> None:
    d = tmp_path / "run" / "spool"
    sp = Spool(d)
    sp.open()
    entry = sp.append(b'{"call": "c1"}')
    sp.ack(entry.bn)
    sp.append(b'{"call": "c2"}')
    sp.close()
    assert mode(d) == 0o700 and mode(tmp_path / "run") == 0o700  # it made both
    files = sorted(p.name for p in d.iterdir())
    assert "checkpoint" in files and any(f.startswith("seg-") for f in files)
    assert {p.name: mode(p) for p in d.iterdir()} == dict.fromkeys(files, 0o600)


def test_an_existing_open_spool_directory_is_closed_up(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    d = run / "spool"
    d.mkdir(mode=0o755)
    (d / "checkpoint").write_text("0\n")
    os.chmod(d / "checkpoint", 0o644)
    Spool(d).open()
    assert mode(d) == 0o700
    write_private(d / "checkpoint", b"1\n")  # an existing file is set 0600 as it is rewritten
    assert mode(d / "checkpoint") == 0o600 and (d / "checkpoint").read_text() == "1\n"
    assert private_dir(d) == d and mode(run) == 0o755  # a parent it did not make is left alone


async def test_rejected_rows_are_private(db_dsn: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    w = CallLogWriter(db_dsn, spool_dir=spool_dir, clock=RealClock(), batch_delay=0.01)
    task = await start(w)
    w.submit(CallRecord("bad", T0, talk_seconds=-5.0, disposition=Disposition.ANSWERED))  # a CHECK fails
    await w.flush(timeout=10)
    await stop(w, task)
    (rej,) = (spool_dir / "rejected").glob("*.jsonl")
    assert json.loads(rej.read_text())["row"][0] == "bad"
    assert mode(spool_dir / "rejected") == 0o700 and mode(rej) == 0o600 and mode(spool_dir) == 0o700


async def test_recordings_folders_are_private_and_a_finished_recording_too(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    rec = Recorder(FakeAMI(), RecordSink(), FakeClock(start=NOW), directory=root, pci_auto_resume=None)
    planned = Path(rec.plan("c2"))  # the dialplan's MixMonitor writes it: the folders exist first
    assert [mode(p) for p in (root, root / "2027", root / "2027/01", planned.parent)] == [0o700] * 4
    assert await rec.start(
        "c1", "PJSIP/agent-1", caller_channel="PJSIP/carrier-1", queue="q", agent_id="1001"
    )
    made = root / "2027/01/15/c1-1.wav"
    made.write_bytes(b"RIFF")  # as Asterisk would, with its own umask
    os.chmod(made, 0o644)
    assert rec.call_ended("c1") is not None
    assert mode(made) == 0o600 and mode(made.parent) == 0o700
    await rec.close()
