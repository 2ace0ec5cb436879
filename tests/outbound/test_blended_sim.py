"""The example center on the simulated PBX, blended: its six agents take inbound calls from the
busy hour's callers and both campaigns' calls. The progressive campaign holds an agent before each
dial, so none of its live answers is abandoned while inbound calls flow (across seeds).

The whole controller runs (IVR, ACD, dialer, call log) on one autojump clock, as the demo does;
the simulated agents answer every offer (a missed offer is RONA, another subject)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import asyncpg
import pytest

from callcenter.app.controller import Controller, Links, login_all
from callcenter.app.plugins import standard_plugins
from callcenter.clock import AutojumpClock
from callcenter.commands.demo import demo_start, for_demo, import_demo_contacts
from callcenter.commands.sim import center_scenario, start_sim
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from tests.centers import REPO
from tests.fakes import within

MINUTES = 40.0


async def _outcomes(dsn: str) -> dict[tuple[str, str], int]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT campaign_id, outcome, count(*) AS n FROM campaign_attempts"
            " WHERE outcome IS NOT NULL GROUP BY 1, 2",
            timeout=10,
        )
        inbound = await conn.fetchval(
            "SELECT count(*) FROM calls WHERE direction = 'inbound' AND answered_at IS NOT NULL", timeout=10
        )
    finally:
        await conn.close()
    got = {(r["campaign_id"], r["outcome"]): int(r["n"]) for r in rows}
    got[("inbound", "answered")] = int(inbound)
    return got


@pytest.mark.parametrize("seed", [5, 11])
async def test_a_blended_progressive_campaign_abandons_nobody(
    seed: int, db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    config = for_demo(load_config(REPO / "dialplans"), tmp_path)
    assert str(config.campaigns["reminders"].mode) == "progressive"
    write_files(render(config), tmp_path / "asterisk")
    await import_demo_contacts(config, REPO / "dialplans", tmp_path, db_dsn)
    clock = autojump_clock.starting_at(demo_start(config, now=1_795_000_000.0, latest=None))
    sim = await start_sim(
        tmp_path / "asterisk", tmp_path, clock=clock, seed=seed, sounds_dirs=(REPO / "ivr_prompts",)
    )
    links = Links.from_config(
        config, ami_host="127.0.0.1", ami_port=sim.ami_port, agi_bind="127.0.0.1", agi_port=0,
        http_host="127.0.0.1", http_port=0,
    )  # fmt: skip
    ctl = Controller(
        config, dsn=db_dsn, run_dir=tmp_path, clock=clock, links=links, plugins=standard_plugins()
    )
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.run(stop))
    try:
        await asyncio.wait_for(ctl.ready.wait(), 60)
        assert await login_all(ctl) == len(config.agents)
        assert ctl.agi is not None
        scenario = center_scenario("busy-hour", config, MINUTES)
        answering = tuple(dataclasses.replace(a, no_answer_probability=0.0) for a in scenario.agents)
        sim.start_people(dataclasses.replace(scenario, agents=answering), agi_port=ctl.agi.port)
        await within(clock.sleep(MINUTES * 60.0), timeout=MINUTES * 60.0 + 1.0, clock=clock)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await sim.close()
    got = await _outcomes(db_dsn)
    assert got[("inbound", "answered")] >= 10, got  # inbound calls flowed through the same agents
    assert got.get(("reminders", "connected"), 0) >= 5, got
    assert got.get(("reminders", "abandoned"), 0) == 0, got
    # The predictive campaign, warming up, paces as progressive and holds its agents too.
    assert got.get(("renewals", "abandoned"), 0) == 0, got
