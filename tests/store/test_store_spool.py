"""The spool on its own: framing, checksums, recovery, rotation, acknowledgement, the size limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.errors import SpoolCorruptError, SpoolFullError
from callcenter.store.spool import HEAD_SIZE, Spool, encode_record, scan


def test_append_read_recover_in_order(tmp_path: Path) -> None:
    sp = Spool(tmp_path, segment_bytes=200)
    assert sp.open() == []
    entries = [sp.append(f"batch {i}".encode() * 5) for i in range(10)]
    assert [e.bn for e in entries] == list(range(1, 11))
    assert len(list(tmp_path.glob("seg-*.spool"))) > 1  # rotated
    assert sp.read(entries[3]) == b"batch 3" * 5
    sp.ack(4)
    sp.close()
    again = Spool(tmp_path, segment_bytes=200)
    pending = again.open()
    assert [e.bn for e in pending] == list(range(5, 11))
    assert [again.read(e) for e in pending] == [f"batch {i}".encode() * 5 for i in range(4, 10)]
    assert again.append(b"next").bn == 11  # numbering continues after a restart
    again.ack(11)
    again.close()
    # Everything acknowledged: the finished segments are gone, only the current one may remain.
    assert len(list(tmp_path.glob("seg-*.spool"))) <= 1
    third = Spool(tmp_path)
    assert third.open() == []


def test_size_limit_refuses_loudly(tmp_path: Path) -> None:
    sp = Spool(tmp_path, limit_bytes=200)
    sp.open()
    sp.append(b"x" * 100)
    with pytest.raises(SpoolFullError) as info:
        sp.append(b"y" * 100)
    assert info.value.limit_bytes == 200 and info.value.code == "spool_full"
    sp.ack(1)  # acknowledging frees nothing while the segment is current, but reading works
    assert sp.size_bytes >= 100


def test_corruption_is_reported_and_skipped(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    sp.open()
    a = sp.append(b"first")
    b = sp.append(b"second")
    sp.append(b"third")
    sp.close()
    (seg,) = tmp_path.glob("seg-*.spool")
    data = bytearray(seg.read_bytes())
    data[b.location.offset + HEAD_SIZE] ^= 1
    seg.write_bytes(bytes(data))
    reported: list[SpoolCorruptError] = []
    again = Spool(tmp_path, on_corrupt=reported.append)
    pending = again.open()
    assert [e.bn for e in pending] == [1, 3]
    assert len(reported) == 1 and reported[0].offset == b.location.offset
    assert again.read(pending[0]) == b"first" and again.read(pending[1]) == b"third"
    with pytest.raises(SpoolCorruptError):
        again.read(b)
    assert a.location.offset == 0


@settings(max_examples=150, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=8),
    junk=st.binary(max_size=40),
    cut=st.integers(0, 400),
)
def test_scan_never_raises_and_finds_every_sound_record(payloads: list[bytes], junk: bytes, cut: int) -> None:
    blob = b"".join(encode_record(i + 1, p) for i, p in enumerate(payloads))
    found = [(bn, p) for _, bn, p in scan(blob, on_corrupt=lambda off, why: None)]
    assert found == [(i + 1, p) for i, p in enumerate(payloads)]
    # Garbage in front and a torn tail: sound records are still found, nothing raises.
    damaged = junk + blob[: max(0, len(blob) - cut % (len(blob) + 1))]
    problems: list[str] = []
    got = [p for _, _, p in scan(damaged, on_corrupt=lambda off, why: problems.append(why))]
    assert all(p in payloads for p in got)
