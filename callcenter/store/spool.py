"""Shell: the call-log writer's append-only spool on disk (blocking file I/O; run it in a thread).

Every batch the writer forms is appended here and fsync'd *before* it is sent to PostgreSQL, and
acknowledged here after PostgreSQL committed it. So a batch survives both a database outage and a
controller crash: on start, every batch after the last acknowledgement is replayed (the writes are
idempotent, so a batch that was committed but not yet acknowledged does no harm).

Layout of ``spool_dir``:

    seg-<first batch number, 16 digits>.spool   append-only segments, rotated at ``segment_bytes``
    checkpoint                                  the last acknowledged batch number (atomic rename)

A record is ``MAGIC (4) | batch number (u64) | length (u32) | crc32 (u32) | payload`` (big-endian);
the CRC covers the batch number and the payload. A record that fails its framing or checksum (a torn
write at a crash, a flipped bit) is reported through ``on_corrupt`` and skipped: reading resumes at
the next MAGIC. Fully acknowledged segments are deleted. When the segments together would pass
``limit_bytes`` the append is refused with ``SpoolFullError`` (the writer says so loudly).

The spool holds call rows: its directory is mode 0700 and every file in it 0600
(:func:`private_dir`, :func:`write_private`), whatever the umask.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from callcenter.errors import SpoolCorruptError, SpoolError, SpoolFullError

MAGIC = b"\xccSP1"
_HEAD = struct.Struct(">4sQII")
HEAD_SIZE = _HEAD.size
MAX_PAYLOAD = 256 << 20
_SEG = re.compile(r"^seg-(\d{16})\.spool$")


@dataclass(frozen=True)
class Location:
    """Where a record lives: its segment file and byte offset."""

    segment: Path
    offset: int


@dataclass(frozen=True)
class Entry:
    bn: int
    location: Location


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and set it mode 0700; the parents it created too."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for d in {path, *missing}:
        os.chmod(d, PRIVATE_DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` whole, mode 0600 from its creation (never readable by others meanwhile)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # an existing file keeps its old mode through O_CREAT
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
    finally:
        os.close(fd)


def encode_record(bn: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(struct.pack(">Q", bn)))
    return _HEAD.pack(MAGIC, bn, len(payload), crc) + payload


def scan(data: bytes, *, on_corrupt: Callable[[int, str], None]) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(offset, bn, payload)`` for each sound record of a segment's bytes, calling
    ``on_corrupt(offset, why)`` for each stretch it has to skip."""
    pos = 0
    end = len(data)
    while pos < end:
        if end - pos < HEAD_SIZE:
            on_corrupt(pos, "truncated record header")
            return
        magic, bn, length, crc = _HEAD.unpack_from(data, pos)
        why = ""
        if magic != MAGIC:
            why = "bad magic"
        elif length > MAX_PAYLOAD or pos + HEAD_SIZE + length > end:
            why = "truncated or oversized record"
        else:
            payload = data[pos + HEAD_SIZE : pos + HEAD_SIZE + length]
            if zlib.crc32(payload, zlib.crc32(struct.pack(">Q", bn))) != crc:
                why = "checksum mismatch"
        if why:
            on_corrupt(pos, why)
            nxt = data.find(MAGIC, pos + 1)
            if nxt < 0:
                return
            pos = nxt
            continue
        yield pos, bn, payload
        pos += HEAD_SIZE + length


class Spool:
    """The segments in one directory. Thread-safe: the writer appends from one thread while it reads
    and acknowledges from another."""

    def __init__(
        self,
        directory: Path,
        *,
        limit_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        fsync: bool = True,
        on_corrupt: Callable[[SpoolCorruptError], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.limit_bytes = limit_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.on_corrupt = on_corrupt
        self._lock = threading.Lock()
        self._sizes: dict[Path, int] = {}
        self._last_bn: dict[Path, int] = {}
        self._current: Path | None = None
        self._fh: int | None = None
        self.acked = 0
        self.next_bn = 1
        self.corrupt = 0

    # -- open / recover ------------------------------------------------------------------------
    def open(self) -> list[Entry]:
        """Create the directory if needed and return the unacknowledged records, oldest first."""
        try:
            private_dir(self.directory)
        except OSError as exc:
            raise SpoolError(
                f"cannot create spool directory {self.directory}: {exc}", path=str(self.directory)
            ) from exc
        self.acked = self._read_checkpoint()
        pending: list[Entry] = []
        max_bn = self.acked
        for seg in self._segments():
            try:
                data = seg.read_bytes()
            except OSError as exc:
                raise SpoolError(f"cannot read spool segment {seg}: {exc}", path=str(seg)) from exc
            self._sizes[seg] = len(data)
            last = 0
            report: Callable[[int, str], None] = functools.partial(self._corrupt, seg)
            for offset, bn, _payload in scan(data, on_corrupt=report):
                last = max(last, bn)
                if bn > self.acked:
                    pending.append(Entry(bn, Location(seg, offset)))
            self._last_bn[seg] = last
            max_bn = max(max_bn, last)
        self.next_bn = max_bn + 1
        pending.sort(key=lambda e: e.bn)
        self._drop_acked_segments()
        return pending

    def _corrupt(self, seg: Path, offset: int, why: str) -> None:
        self.corrupt += 1
        err = SpoolCorruptError(
            f"corrupt spool record in {seg} at byte {offset}: {why}; skipped", path=str(seg), offset=offset
        )
        if self.on_corrupt is not None:
            self.on_corrupt(err)

    def _segments(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if _SEG.match(p.name))

    def _read_checkpoint(self) -> int:
        path = self.directory / "checkpoint"
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise SpoolError(f"cannot read {path}: {exc}", path=str(path)) from exc
        try:
            return int(text)
        except ValueError:
            # A damaged checkpoint: replay everything (idempotent), and say so.
            self._corrupt(path, 0, "unreadable checkpoint; replaying every spooled batch")
            return 0

    @property
    def size_bytes(self) -> int:
        """Bytes on disk in the segments. Read without the lock (an append may be in its fsync):
        a copy of the values, summed."""
        return sum(list(self._sizes.values()))

    # -- append --------------------------------------------------------------------------------
    def append(self, payload: bytes) -> Entry:
        """Write one batch durably (fsync) and return its number and place."""
        with self._lock:
            record = encode_record(self.next_bn, payload)
            if sum(self._sizes.values()) + len(record) > self.limit_bytes:
                raise SpoolFullError(
                    f"call-log spool {self.directory} is full ({self.limit_bytes} bytes): "
                    "PostgreSQL has been away too long; batches are no longer durable",
                    path=str(self.directory),
                    limit_bytes=self.limit_bytes,
                )
            if self._current is None or self._sizes.get(self._current, 0) >= self.segment_bytes:
                self._rotate()
            if self._current is None or self._fh is None:
                raise SpoolError("spool segment not open", path=str(self.directory))
            offset = self._sizes[self._current]
            try:
                os.write(self._fh, record)
                if self.fsync:
                    os.fsync(self._fh)
            except OSError as exc:
                raise SpoolError(
                    f"cannot write spool segment {self._current}: {exc}", path=str(self._current)
                ) from exc
            bn = self.next_bn
            self.next_bn += 1
            self._sizes[self._current] = offset + len(record)
            self._last_bn[self._current] = bn
            return Entry(bn, Location(self._current, offset))

    def _rotate(self) -> None:
        if self._fh is not None:
            os.close(self._fh)
            self._fh = None
        path = self.directory / f"seg-{self.next_bn:016d}.spool"
        try:
            self._fh = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
            if self.fsync:
                dfd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError as exc:
            raise SpoolError(f"cannot open spool segment {path}: {exc}", path=str(path)) from exc
        self._current = path
        self._sizes.setdefault(path, path.stat().st_size)

    # -- read / ack ----------------------------------------------------------------------------
    def read(self, entry: Entry) -> bytes:
        """The payload of a record written earlier; SpoolCorruptError if it no longer checks out."""
        loc = entry.location
        try:
            with open(loc.segment, "rb") as fh:
                fh.seek(loc.offset)
                head = fh.read(HEAD_SIZE)
                if len(head) < HEAD_SIZE:
                    raise SpoolCorruptError(
                        "truncated record header", path=str(loc.segment), offset=loc.offset
                    )
                magic, bn, length, crc = _HEAD.unpack(head)
                if magic != MAGIC or bn != entry.bn or length > MAX_PAYLOAD:
                    raise SpoolCorruptError("bad record header", path=str(loc.segment), offset=loc.offset)
                payload = fh.read(length)
        except OSError as exc:
            raise SpoolError(
                f"cannot read spool segment {loc.segment}: {exc}", path=str(loc.segment)
            ) from exc
        if len(payload) != length or zlib.crc32(payload, zlib.crc32(struct.pack(">Q", bn))) != crc:
            raise SpoolCorruptError("checksum mismatch", path=str(loc.segment), offset=loc.offset)
        return payload

    def ack(self, bn: int) -> None:
        """Every batch up to ``bn`` is in PostgreSQL: checkpoint it and delete finished segments."""
        with self._lock:
            if bn <= self.acked:
                return
            self.acked = bn
            path = self.directory / "checkpoint"
            tmp = self.directory / "checkpoint.tmp"
            try:
                write_private(tmp, f"{bn}\n".encode())
                os.replace(tmp, path)
            except OSError as exc:
                raise SpoolError(f"cannot write {path}: {exc}", path=str(path)) from exc
            self._drop_acked_segments()

    def _drop_acked_segments(self) -> None:
        for seg, last in list(self._last_bn.items()):
            if seg != self._current and last <= self.acked:
                with contextlib.suppress(FileNotFoundError):
                    seg.unlink()
                self._sizes.pop(seg, None)
                self._last_bn.pop(seg, None)
        # An idle current segment that is fully acknowledged and large: start afresh next time.
        cur = self._current
        if (
            cur is not None
            and self._last_bn.get(cur, 0) <= self.acked
            and self._sizes.get(cur, 0) >= self.segment_bytes
        ):
            if self._fh is not None:
                os.close(self._fh)
                self._fh = None
            self._current = None
            with contextlib.suppress(FileNotFoundError):
                cur.unlink()
            self._sizes.pop(cur, None)
            self._last_bn.pop(cur, None)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                os.close(self._fh)
                self._fh = None
            self._current = None
