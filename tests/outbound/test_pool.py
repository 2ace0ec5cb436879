"""The ACD's side of outbound (``AcdAgentPool``) over the real ACD on a scripted AMI: which agents
count for a campaign (its queue's skills and its own) and which agent its calls are offered to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.outbound.contacts import Contact
from callcenter.outbound.dialer import Attempt
from callcenter.outbound.pool import AcdAgentPool
from tests.centers import example
from tests.fakes import AcdRig, acd_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[AcdRig]:
    async with acd_rig(example(), tmp_path) as r:
        yield r


async def test_a_campaigns_skills_narrow_its_agents_and_route_its_calls(rig: AcdRig) -> None:
    # The campaign dials for general (longest idle first): 1001 (general 6, spanish 8) and 1002
    # (general 5, no spanish) serve it.
    await rig.acd.login("1001")
    await rig.acd.login("1002")
    plain = AcdAgentPool(rig.acd, {"renewals": "general"})
    spanish = AcdAgentPool(rig.acd, {"renewals": "general"}, skills={"renewals": {"spanish": 5}})
    assert plain.load("renewals").logged_in == 2
    assert spanish.load("renewals").logged_in == 1
    # A reload that drops the campaign's skills counts both again.
    spanish.reload({"renewals": "general"}, {"renewals": {}})
    assert spanish.load("renewals").logged_in == 2
    spanish.reload({"renewals": "general"}, {"renewals": {"spanish": 5}})

    # Its call is offered only to an agent with the skill, even when another has idled longer.
    await rig.acd.logout("1001")
    await rig.acd.login("1001")  # 1002 is now the longest idle
    contact = Contact(key="k1", phone="+12125550101", zones=("America/New_York",))
    attempt = Attempt("att-1", "renewals", contact, 1, rig.clock.now())
    connecting = asyncio.create_task(
        spanish.connect("renewals", channel="PJSIP/dialer-00000001", attempt=attempt, timeout=30.0)
    )
    for _ in range(20):  # the connect task enqueues, then the ACD offers
        await rig.settle()
    assert rig.ami.last_originate()["Channel"] == "PJSIP/agent1001"
    connecting.cancel()
    await asyncio.gather(connecting, return_exceptions=True)
