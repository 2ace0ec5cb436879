"""ACD.withdraw: the dialer takes back a person it could not connect within the legal 2 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.acd import agents as ag
from callcenter.config.model import Config
from callcenter.reporting.records import Disposition
from tests.centers import example
from tests.fakes import acd_rig


@pytest.fixture(scope="module")
def config() -> Config:
    return example()


async def test_withdraw_while_the_agent_rings_frees_the_agent_without_rona(
    config: Config, tmp_path: Path
) -> None:
    async with acd_rig(config, tmp_path) as rig:
        await rig.acd.login("1001")
        await rig.call("att-1", "sales", direction="outbound", campaign_id="renewals")
        leg, agent_chan = await rig.agent_rings()
        assert await rig.acd.withdraw("att-1") is True
        await rig.settle()
        hangups = rig.ami.actions("Hangup")
        assert hangups and hangups[-1]["Channel"] == agent_chan
        st = rig.acd.agent_state("1001")
        assert st.status is ag.Status.AVAILABLE and st.reason != "rona"
        assert rig.sink.disposition("att-1") is Disposition.ABANDONED_QUEUE
        assert rig.acd.call_state("att-1") is None
        assert await rig.acd.withdraw("att-1") is False  # gone already


async def test_withdraw_is_refused_once_an_agent_has_the_call(config: Config, tmp_path: Path) -> None:
    async with acd_rig(config, tmp_path) as rig:
        await rig.acd.login("1001")
        caller = await rig.call("att-2", "sales", direction="outbound", campaign_id="renewals")
        await rig.answer(caller)
        assert rig.acd.call_state("att-2") == "connected"
        assert await rig.acd.withdraw("att-2") is False
        assert rig.acd.call_state("att-2") == "connected"
