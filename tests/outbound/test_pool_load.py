"""The dialer's view of its agents tells paused agents from logged-out ones (so its pacing says
"all paused", not "no agent logged in")."""

from __future__ import annotations

from pathlib import Path

from callcenter.outbound.pool import AcdAgentPool
from tests.centers import example
from tests.fakes import acd_rig


async def test_paused_agents_are_logged_in_but_not_working(tmp_path: Path) -> None:
    config = example()
    queue = config.campaigns["renewals"].queue
    async with acd_rig(config, tmp_path) as rig:
        pool = AcdAgentPool(rig.acd, {"renewals": queue})
        eligible = pool._agents_for("renewals")
        assert eligible
        load = pool.load("renewals")
        assert (load.logged_in, load.paused) == (0, 0)
        for agent_id in eligible:
            await rig.acd.login(agent_id)
            await rig.acd.pause(agent_id, next(iter(config.pause_reasons)))
        load = pool.load("renewals")
        assert (load.logged_in, load.idle, load.paused) == (0, 0, len(eligible))
        await rig.acd.resume(eligible[0])
        load = pool.load("renewals")
        assert (load.logged_in, load.idle, load.paused) == (1, 1, len(eligible) - 1)
