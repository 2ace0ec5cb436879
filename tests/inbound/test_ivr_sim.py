"""The IVR end to end on the simulated PBX: the example center rendered from ``dialplans/``,
callers on the simulated trunk pressing keys at real prompts, the controller's FastAGI server with
the ``ivr`` route over real sockets, the call log in the private PostgreSQL and the customers table
for the screen-pop. Also: the controller stopped mid-run, new calls take Asterisk's static
fallback. The simulator and the controller share one autojump clock: prompts, digit timeouts and
batching run in simulated time, as fast as the loop can go."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.clock import AutojumpClock
from callcenter.config import model as m
from callcenter.config.render import render, write_files
from callcenter.inbound.service import IvrService
from callcenter.sim import SimulatedPBX
from callcenter.store.customers import Customer, CustomerDirectory, upsert_customers
from callcenter.store.writer import CallLogWriter
from tests.centers import DID, REPO, example
from tests.fakes import FakeDistributor, SimPerson, within

DEADLINE = 600.0  # simulated seconds for one call: far beyond any prompt path
# Monday 2026-11-23 15:00 UTC = 10:00 in New York: open; Sunday: closed
OPEN = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC).timestamp()
SUNDAY = dt.datetime(2026, 11, 22, 15, 0, tzinfo=dt.UTC).timestamp()


@pytest.fixture(scope="module")
def center() -> m.Config:
    return example(env={"CC_AMI_SECRET": "sim-secret"})


@pytest.fixture(scope="module")
def etc(center: m.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("etc")
    write_files(render(center), out)
    return out


@dataclass
class Stack:
    sim: SimulatedPBX
    server: FastAGIServer
    service: IvrService
    acd: FakeDistributor
    pool: Any
    clock: AutojumpClock

    async def call(
        self, person: SimPerson, caller: str = "+12125550100", *, real_time: bool = False
    ) -> SimPerson:
        """Place a call and wait until it ends, within ``DEADLINE`` simulated seconds (``real_time``:
        30 real seconds, for a call that waits on a real-time bound of the controller, which a
        simulated deadline would overtake while the loop idles)."""
        self.sim.pbx.inbound_call(DID, caller_num=caller, context=names.CTX_INBOUND, owner=person)
        if real_time:
            await within(person.gone.wait(), timeout=30)
        else:
            await within(person.gone.wait(), timeout=DEADLINE, clock=self.clock)
        return person


@contextlib.asynccontextmanager
async def stack(
    center: m.Config,
    etc: Path,
    dsn: str,
    tmp: Path,
    clock: AutojumpClock,
    *,
    now: float = OPEN,
    lookup_timeout: float = 5.0,
) -> AsyncIterator[Stack]:
    clock = clock.starting_at(now)  # the scenario's wall time, so the hours are known
    writer = CallLogWriter(dsn, spool_dir=tmp / "spool", clock=clock, batch_delay=0.05, fsync=False)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, timeout=10)
    acd = FakeDistributor()
    ids = iter(f"sim-{i}" for i in range(1, 10_000))
    service = IvrService(
        center,
        writer=writer,
        distributor=acd,
        customers=CustomerDirectory(pool, timeout=lookup_timeout),
        clock=clock,
        new_call_id=lambda: next(ids),
    )
    server = FastAGIServer({names.AGI_IVR: service.handle}, host="127.0.0.1", port=0)
    runner = asyncio.create_task(writer.run())
    try:
        async with server:
            sim = SimulatedPBX(
                etc,
                clock=clock,
                agi_host="127.0.0.1",
                agi_port=server.port,
                recordings_dir=tmp / "rec",
                sounds_dirs=[REPO / "ivr_prompts"],
            )
            async with sim:
                yield Stack(sim, server, service, acd, pool, clock)
            assert server.failed == 0
        await writer.flush(timeout=30)
    finally:
        await writer.close(timeout=30)
        await runner
        await pool.close()


async def fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def path_of(rows: list[asyncpg.Record], call_id: str) -> list[tuple[str, str]]:
    return [(r["node"], json.loads(r["detail"])["outcome"]) for r in rows if r["call_id"] == call_id]


EVENTS = "SELECT call_id, node, detail FROM call_events WHERE kind = 'ivr_node' ORDER BY call_id, seq"


async def test_callers_pressing_valid_invalid_and_no_keys(
    center: m.Config, etc: Path, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with stack(center, etc, db_dsn, tmp_path, autojump_clock) as s:
        async with s.pool.acquire() as conn:
            await upsert_customers(conn, [Customer("+12125550100", "Ada Lovelace", "vip", "A-1")])
        vip = await s.call(SimPerson({"language-menu": ["1"], "main-menu": ["1"]}))
        spanish = await s.call(
            SimPerson({"language-menu": ["2"], "main-menu": ["3"], "support-menu": ["1"]}), "+12125550111"
        )
        invalid = await s.call(
            SimPerson({"language-menu": ["1"], "main-menu": ["7", "8", "9"]}), "+12125550122"
        )
        silent = await s.call(SimPerson({}), "+12125550133")
    assert vip.held.is_set() and spanish.held.is_set() and invalid.held.is_set() and silent.held.is_set()
    assert [(c.call_id, c.queue, c.priority, c.language) for c in s.acd.calls] == [
        ("sim-1", "sales", 50, "en"),
        ("sim-2", "support", 0, "es"),
        ("sim-3", "general", 0, "en"),
        ("sim-4", "general", 0, "en"),
    ]
    assert s.acd.calls[0].data["customer_name"] == "Ada Lovelace"
    assert vip.prompts == ["welcome", "language-menu", "main-menu", "transfer-sales"]
    assert invalid.prompts.count("invalid-option") == 2
    assert silent.prompts.count("no-input") == 2
    # what the callers heard in Spanish came from the Spanish recordings
    assert "support-menu" in spanish.prompts
    rows = await fetch(db_dsn, EVENTS)
    assert path_of(rows, "sim-3")[-4:] == [
        ("main-menu", "invalid"),
        ("main-menu", "invalid"),
        ("main-menu", "invalid"),
        ("main-menu.fallback", "queue"),
    ]
    assert [o for n, o in path_of(rows, "sim-4") if n == "main-menu"] == ["timeout"] * 3
    calls = {r["call_id"]: r for r in await fetch(db_dsn, "SELECT call_id, priority, language FROM calls")}
    assert calls["sim-1"]["priority"] == 50 and calls["sim-2"]["language"] == "es"


async def test_hanging_up_mid_prompt_is_an_ivr_abandon(
    center: m.Config, etc: Path, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with stack(center, etc, db_dsn, tmp_path, autojump_clock) as s:
        person = await s.call(SimPerson({"language-menu": ["1"]}, hang_up_at="main-menu"))
    assert not person.held.is_set() and s.acd.calls == []
    assert s.service.stats.finished == {"abandoned": 1}
    rows = await fetch(db_dsn, "SELECT disposition, hangup_by FROM calls")
    assert [(r["disposition"], r["hangup_by"]) for r in rows] == [("abandoned_ivr", "caller")]
    last = path_of(await fetch(db_dsn, EVENTS), "sim-1")[-1]
    assert last == ("main-menu", "caller_hangup")


async def test_after_hours_the_caller_hears_closed(
    center: m.Config, etc: Path, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with stack(center, etc, db_dsn, tmp_path, autojump_clock, now=SUNDAY) as s:
        person = await s.call(SimPerson({}))
    assert person.prompts == ["closed"] and s.acd.calls == []
    rows = await fetch(db_dsn, "SELECT disposition FROM calls")
    assert [r["disposition"] for r in rows] == ["after_hours"]


async def test_lookup_timeout_lets_the_call_go_on(
    center: m.Config, etc: Path, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with stack(center, etc, db_dsn, tmp_path, autojump_clock) as s:
        async with s.pool.acquire() as conn:
            await upsert_customers(conn, [Customer("+12125550100", "Ada", "vip")])
            async with s.pool.acquire() as conn2:  # both pool connections busy: the lookup waits
                # the lookup's bound (0.3 s) is real time: so is this call's deadline
                await s.call(SimPerson({"language-menu": ["1"], "main-menu": ["1"]}), real_time=True)
                del conn2
    assert [c.priority for c in s.acd.calls] == [0]
    rows = await fetch(db_dsn, "SELECT detail FROM call_events WHERE kind = 'lookup'")
    assert json.loads(rows[0]["detail"])["outcome"] == "timeout"


async def test_billing_account_and_voicemail(
    center: m.Config, etc: Path, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    good = next(f"{n:08d}" for n in range(10_000_000, 10_001_000) if _luhn(f"{n:08d}"))
    async with stack(center, etc, db_dsn, tmp_path, autojump_clock) as s:
        queued = await s.call(
            SimPerson(
                {
                    "language-menu": ["1"],
                    "main-menu": ["2"],
                    "enter-account": [good + "#"],
                    "billing-menu": ["1"],
                }
            )
        )
        vm = await s.call(
            SimPerson(
                {"language-menu": ["1"], "main-menu": ["2"], "enter-account": ["#"], "billing-menu": ["3"]}
            ),
            "+12125550144",
        )
    assert queued.held.is_set() and s.acd.calls[0].queue == "billing"
    assert s.acd.calls[0].data["account"].endswith(good[-4:]) and good not in str(s.acd.calls[0].data)
    assert "VoiceMail" in vm.apps and len(s.acd.calls) == 1
    rows = await fetch(db_dsn, "SELECT call_id, disposition FROM calls ORDER BY call_id")
    assert [r["disposition"] for r in rows] == [None, "voicemail"]


async def test_controller_stopped_mid_run_new_calls_take_the_fallback(
    center: m.Config, etc: Path, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with stack(center, etc, db_dsn, tmp_path, autojump_clock) as s:
        first = await s.call(SimPerson({"language-menu": ["1"], "main-menu": ["1"]}))
        await s.server.close()  # the controller goes away
        second = await s.call(SimPerson({}), "+12125550155")
    assert first.held.is_set()
    assert "AGI" in second.apps and "Dial" in second.apps and "VoiceMail" in second.apps
    assert second.prompts[0] == "fallback-message"


def _luhn(digits: str) -> bool:
    from callcenter.inbound.ivr import luhn_ok

    return luhn_ok(digits)


async def test_dtmf_flood_at_a_menu(
    center: m.Config, etc: Path, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    """100 repeat keys then a choice, all typed at once over the first menu prompt, then 10,000
    digits typed over the next one: the IVR takes them one read at a time and ends in a queue."""
    async with stack(center, etc, db_dsn, tmp_path, autojump_clock) as s:
        flood = await s.call(
            SimPerson(
                {"language-menu": ["1"], "main-menu": ["*" * 100 + "3"], "support-menu": ["1" * 10_000]}
            )
        )
    assert flood.held.is_set()
    assert [(c.queue, c.language) for c in s.acd.calls] == [("support", "en")]
    rows = path_of(await fetch(db_dsn, EVENTS), "sim-1")
    assert [o for n, o in rows if n == "main-menu"] == ["repeat"] * 100 + ["choice"]


async def test_an_acd_refusal_sends_the_caller_to_the_static_fallback(
    center: m.Config, etc: Path, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    async with stack(center, etc, db_dsn, tmp_path, autojump_clock) as s:
        s.acd.fail = True
        person = await s.call(SimPerson({"language-menu": ["1"], "main-menu": ["1"]}))
    assert not person.held.is_set()
    after_agi = person.apps[person.apps.index("AGI") + 1 :]
    # EXEC Goto, then cc-fallback from its first step (its own hours check, message, ring group,
    # voicemail: the rendered context's business, not the IVR's)
    assert after_agi[:3] == ["Goto", "NoOp", "Answer"]
    assert "Playback" in after_agi
    rows = await fetch(db_dsn, "SELECT detail FROM call_events WHERE kind = 'note'")
    assert json.loads(rows[0]["detail"])["to"] == "fallback"
