"""Shell: call recording on the PBX (MixMonitor), PCI pause/resume, and the retention purge.

``Recorder`` names the file of a recording the dialplan starts when the agent answers (``plan``,
then ``adopt_planned`` once the bridge forms), or has the dialplan start one on a connected call
(``start``: the ``always`` policy without a plan, and ``on_demand``): the file name is set on the
agent leg and both legs are redirected at once (``ExtraChannel``), the agent leg into
``cc-agent-leg`` (MixMonitor, then Bridge() the caller again), the caller into ``cc-hold`` for that
moment. Never the ``MixMonitor`` action: Asterisk gives it to write class ``system`` only, which
with ``originate`` runs shell commands. It pauses and resumes a recording for card data with
``MixMonitorMute`` (every pause and resume is a ``CallEvent``, and a pause resumes by itself after
the configured ``auto_resume``), and indexes each recording in the call log (``RecordingRecord``:
path, start, end, length, seconds paused).

File names come from the date and the call id only (``YYYY/MM/DD/<call_id>-<n>.<ext>`` under the
recordings directory): never from caller input. The recordings directory and each date folder
are made mode 0700 before a recording starts (Asterisk would make them 0755), and a finished
recording is set 0600. A call id that is not made of safe characters is
refused (``UnsafeValueError``) before anything is sent.

``purge(directory, retention_days, now, store)`` deletes recordings older than the retention
period: the files the call log lists (then marks them ``deleted_at``), and files left in old date
folders that match the naming pattern. It never follows a path out of the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.asterisk import names
from callcenter.clock import Clock
from callcenter.errors import AsteriskError, UnsafeValueError
from callcenter.ports import ActionSender, PurgeStore, RecordSink
from callcenter.reporting.records import CallEvent, EventKind, RecordingRecord

log = logging.getLogger(__name__)

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}-\d+\.(wav|WAV|gsm)$")
EXTENSIONS = {"wav": "wav", "wav49": "WAV", "gsm": "gsm"}


def check_id(call_id: str) -> str:
    if not SAFE_ID.match(call_id):
        raise UnsafeValueError("a call id used in a file name must be safe characters", field="call_id")
    return call_id


def private_dirs(root: Path, sub: Path) -> Path:
    """Create ``root / sub`` with every folder from ``root`` down mode 0700; return it."""
    target = root / sub
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    d = root
    for part in sub.parts:
        d = d / part
        os.chmod(d, 0o700)
    return target


def relative_path(call_id: str, now: float, n: int = 1, fmt: str = "wav") -> str:
    """``YYYY/MM/DD/<call_id>-<n>.<ext>`` (UTC date of ``now``)."""
    day = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    return f"{day:%Y/%m/%d}/{check_id(call_id)}-{n}.{EXTENSIONS.get(fmt, 'wav')}"


@dataclass
class _Recording:
    recording_id: str
    call_id: str
    channel: str
    queue: str | None
    agent_id: str | None
    path: str
    started_at: float
    paused_since: float | None = None
    paused_total: float = 0.0
    resume_task: asyncio.Task[None] | None = field(default=None, repr=False)


class Recorder:
    """Recordings per queue policy (MixMonitor in the dialplan), PCI pause/resume, and the
    call-log index of recordings."""

    def __init__(
        self,
        ami: ActionSender,
        sink: RecordSink,
        clock: Clock,
        *,
        directory: str | Path,
        fmt: str = "wav",
        pci_auto_resume: float | None = 180.0,
        pci_enabled: bool = True,
        action_timeout: float = 5.0,
        options: str = "b",
    ) -> None:
        self.ami = ami
        self.sink = sink
        self.clock = clock
        self.directory = Path(directory)
        self.fmt = fmt
        self.pci_auto_resume = pci_auto_resume
        self.pci_enabled = pci_enabled
        self.action_timeout = action_timeout
        self.options = options
        self._active: dict[str, _Recording] = {}  # call_id -> recording in progress
        self._counts: dict[str, int] = {}
        self._planned: dict[str, tuple[str, int, float]] = {}  # call_id -> (rel path, n, planned at)

    @classmethod
    def from_config(cls, ami: ActionSender, sink: RecordSink, clock: Clock, recording: Any) -> Recorder:
        """From ``callcenter.config.model.Recording``."""
        return cls(
            ami,
            sink,
            clock,
            directory=recording.directory,
            fmt=str(recording.format),
            pci_auto_resume=recording.pci.auto_resume,
            pci_enabled=recording.pci.enabled,
        )

    def active(self, call_id: str) -> bool:
        return call_id in self._active

    def plan(self, call_id: str) -> str:
        """The absolute file name for a recording the dialplan starts itself (``cc-agent-leg`` runs
        ``MixMonitor(${CC_RECORDING},b)`` when the agent answers); ``adopt_planned`` indexes it."""
        now = self.clock.now()
        n = self._counts.get(call_id, 0) + 1
        self._counts[call_id] = n
        rel = relative_path(call_id, now, n, self.fmt)
        self._planned[call_id] = (rel, n, now)
        try:
            private_dirs(self.directory, Path(rel).parent)
        except OSError as exc:  # Asterisk may still make it; the recording is not given up here
            log.warning("cannot make the recordings folder for %s: %s", call_id, exc)
        return str(self.directory / rel)

    def adopt_planned(self, call_id: str, channel: str, *, queue: str | None, agent_id: str | None) -> bool:
        """Index the recording planned for ``call_id`` (running on ``channel``) now; False if none."""
        planned = self._planned.pop(call_id, None)
        if planned is None or call_id in self._active:
            return False
        rel, n, _at = planned
        now = self.clock.now()
        rec = _Recording(f"{call_id}-{n}", call_id, channel, queue, agent_id, rel, now)
        self._active[call_id] = rec
        self._index_start(rec, now)
        return True

    def _index_start(self, rec: _Recording, now: float) -> None:
        self.sink.submit(
            RecordingRecord(
                rec.recording_id,
                now,
                call_id=rec.call_id,
                agent_id=rec.agent_id,
                queue=rec.queue,
                path=rec.path,
                started_at=now,
            )
        )
        self.sink.submit(
            CallEvent(
                rec.call_id,
                now,
                EventKind.RECORDING_START,
                queue=rec.queue,
                agent_id=rec.agent_id,
                detail={"path": rec.path},
            )
        )

    async def start(
        self, call_id: str, channel: str, *, caller_channel: str, queue: str | None, agent_id: str | None
    ) -> bool:
        """Record ``call_id`` from now: ``channel`` is its agent leg (running ``cc-agent-leg``'s
        Bridge() with ``caller_channel``). The leg gets the file name, then one Redirect sends it
        back through ``cc-agent-leg`` (MixMonitor, Bridge()) and the caller to ``cc-hold`` until
        the leg bridges it again. False if already recording or an action failed."""
        if call_id in self._active:
            return False
        now = self.clock.now()
        n = self._counts.get(call_id, 0) + 1
        rel = relative_path(call_id, now, n, self.fmt)
        target = self.directory / rel
        private_dirs(self.directory, Path(rel).parent)
        rec = _Recording(f"{call_id}-{n}", call_id, channel, queue, agent_id, rel, now)
        self._active[call_id] = rec
        self._counts[call_id] = n
        try:
            await self.ami.send_action(
                names.ACTION_SETVAR,
                {"Channel": channel, "Variable": names.VAR_RECORDING_FILE, "Value": str(target)},
                timeout=self.action_timeout,
            )
            await self.ami.send_action(
                names.ACTION_REDIRECT,
                {
                    "Channel": channel,
                    "Context": names.CTX_AGENT_LEG,
                    "Exten": "s",
                    "Priority": "1",
                    "ExtraChannel": caller_channel,
                    "ExtraContext": names.CTX_HOLD,
                    "ExtraExten": "s",
                    "ExtraPriority": "1",
                },
                timeout=self.action_timeout,
            )
        except AsteriskError:
            self._active.pop(call_id, None)
            log.warning("recording of call %s (leg %s) not started", call_id, channel, exc_info=True)
            return False
        self._index_start(rec, now)
        return True

    async def pci_pause(self, call_id: str, *, by: str) -> bool:
        """Mute the recording (card data). Logged; resumes by itself after ``pci_auto_resume``."""
        rec = self._active.get(call_id)
        if rec is None or rec.paused_since is not None or not self.pci_enabled:
            return False
        await self._mute(rec, True)
        now = self.clock.now()
        rec.paused_since = now
        self.sink.submit(
            CallEvent(
                call_id, now, EventKind.PCI_PAUSE, queue=rec.queue, agent_id=rec.agent_id, detail={"by": by}
            )
        )
        if self.pci_auto_resume is not None:
            rec.resume_task = asyncio.create_task(self._auto_resume(call_id, self.pci_auto_resume))
        return True

    async def pci_resume(self, call_id: str, *, by: str) -> bool:
        rec = self._active.get(call_id)
        if rec is None or rec.paused_since is None:
            return False
        task, rec.resume_task = rec.resume_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        await self._mute(rec, False)
        now = self.clock.now()
        rec.paused_total += now - rec.paused_since
        rec.paused_since = None
        self.sink.submit(
            CallEvent(
                call_id, now, EventKind.PCI_RESUME, queue=rec.queue, agent_id=rec.agent_id, detail={"by": by}
            )
        )
        return True

    async def _auto_resume(self, call_id: str, after: float) -> None:
        try:
            await self.clock.sleep(after)
            await self.pci_resume(call_id, by="auto")
        except AsteriskError:
            log.warning("automatic PCI resume of call %s failed", call_id, exc_info=True)

    async def _mute(self, rec: _Recording, on: bool) -> None:
        await self.ami.send_action(
            names.ACTION_MIXMONITOR_MUTE,
            {"Channel": rec.channel, "Direction": "both", "State": "1" if on else "0"},
            timeout=self.action_timeout,
        )

    def call_ended(self, call_id: str) -> RecordingRecord | None:
        """The recorded channel hung up (MixMonitor stops by itself): index the length."""
        self._planned.pop(call_id, None)
        rec = self._active.pop(call_id, None)
        if rec is None:
            return None
        now = self.clock.now()
        if rec.resume_task is not None:
            rec.resume_task.cancel()
        if rec.paused_since is not None:
            rec.paused_total += now - rec.paused_since
        with contextlib.suppress(OSError):  # Asterisk wrote it with its own umask
            os.chmod(self.directory / rec.path, 0o600)
        done = RecordingRecord(
            rec.recording_id,
            now,
            call_id=call_id,
            ended_at=now,
            duration_seconds=round(now - rec.started_at, 3),
            pci_paused_seconds=round(rec.paused_total, 3),
        )
        self.sink.submit(done)
        self.sink.submit(
            CallEvent(call_id, now, EventKind.RECORDING_STOP, queue=rec.queue, agent_id=rec.agent_id)
        )
        return done

    async def close(self) -> None:
        for rec in self._active.values():
            if rec.resume_task is not None:
                rec.resume_task.cancel()


# ------------------------------------------------------------------------------------ the purge
@dataclass
class PurgeReport:
    deleted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)


def _inside(root: Path, rel: str) -> Path | None:
    target = (root / rel).resolve()
    try:
        target.relative_to(root.resolve())
    except ValueError:
        return None
    return target


async def purge(
    directory: str | Path,
    retention_days: int,
    now: float,
    store: PurgeStore | None,
    *,
    dry_run: bool = False,
) -> PurgeReport:
    """Delete recordings older than ``retention_days``: those the call log lists (then marked
    ``deleted_at``), then files in date folders older than the cutoff that follow our naming.
    File work runs in a thread; returns what was done."""
    root = Path(directory)
    cutoff = now - retention_days * 86400.0
    report = PurgeReport()
    if store is not None:
        listed = await store.expired(cutoff)
        done_ids = await asyncio.to_thread(_delete_listed, root, listed, report, dry_run)
        if done_ids and not dry_run:
            await store.mark_deleted(done_ids, now)
    cutoff_day = dt.datetime.fromtimestamp(cutoff, tz=dt.UTC).date()
    await asyncio.to_thread(_sweep, root, cutoff_day, report, dry_run)
    return report


def _delete_listed(
    root: Path, listed: list[tuple[str, str]], report: PurgeReport, dry_run: bool
) -> list[str]:
    done: list[str] = []
    for rec_id, rel in listed:
        target = _inside(root, rel)
        if target is None:
            report.refused.append(rel)
            continue
        if target.exists():
            if not dry_run:
                target.unlink()
            report.deleted.append(rel)
        else:
            report.missing.append(rel)
        done.append(rec_id)
    return done


def _sweep(root: Path, cutoff_day: dt.date, report: PurgeReport, dry_run: bool) -> None:
    if not root.is_dir():
        return
    for day_dir in sorted(root.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]")):
        try:
            y, m, d = (int(p) for p in day_dir.relative_to(root).parts)
            day = dt.date(y, m, d)
        except ValueError:
            continue
        if day >= cutoff_day or day_dir.is_symlink():
            continue
        for f in sorted(day_dir.iterdir()):
            if f.is_file() and not f.is_symlink() and FILE_PATTERN.match(f.name):
                rel = f.relative_to(root).as_posix()
                if not dry_run:
                    f.unlink()
                report.orphans.append(rel)
        if not dry_run and not any(day_dir.iterdir()):
            day_dir.rmdir()
