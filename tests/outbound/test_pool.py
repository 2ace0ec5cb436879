"""The ACD's side of outbound (``AcdAgentPool``) over the real ACD on a scripted AMI: which agents
count for a campaign (its queue's skills and its own) and which agent its calls are offered to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.outbound.contacts import Contact
from callcenter.outbound.dialer import Attempt
from callcenter.outbound.pool import AcdAgentPool, BlendRule, blend_rules
from callcenter.outbound.runtime import runtimes_from_config
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


def _attempt(attempt_id: str, now: float) -> Attempt:
    contact = Contact(key=attempt_id, phone="+12125550101", zones=("America/New_York",))
    return Attempt(attempt_id, "renewals", contact, 1, now)


async def test_a_held_agent_is_never_offered_inbound_and_gets_its_own_person(rig: AcdRig) -> None:
    """The hold is the ACD's: the router skips the held agent for inbound callers, the attempt's
    person is offered to it (not to an agent idle longer), and a release frees it at once."""
    await rig.acd.login("1001")
    await rig.acd.login("1002")
    pool = AcdAgentPool(rig.acd, {"renewals": "general"})
    assert pool.reserve("renewals", "att-1") == "1001"  # the longest idle
    assert rig.acd.agent_state("1001").status.value == "reserved"
    assert pool.load("renewals").idle == 2  # its own held agent counts, for its line in flight
    await rig.call("in-1", "general")
    assert rig.acd.snapshot()["calls"]["in-1"]["agent_id"] == "1002"  # not the held agent
    await rig.call("in-2", "general")
    assert rig.acd.call_state("in-2") == "waiting"  # waits rather than take the held agent
    assert pool.reserve("renewals", "att-2") is None  # nobody else to hold
    # The attempt rang out: the agent is free at once and takes the waiting inbound caller.
    pool.release("att-1", reason="attempt_no_answer")
    await rig.settle()
    assert rig.acd.snapshot()["calls"]["in-2"]["agent_id"] == "1001"
    assert pool.held() == {}


async def test_the_person_of_a_held_attempt_is_offered_to_the_held_agent(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    await rig.acd.login("1002")
    pool = AcdAgentPool(rig.acd, {"renewals": "general"})
    assert pool.reserve("renewals", "att-1", agent_id="1002") == "1002"  # preview: its own agent
    connecting = asyncio.create_task(
        pool.connect("renewals", channel="PJSIP/dialer-00000001", attempt=_attempt("att-1", 0), timeout=30.0)
    )
    for _ in range(20):
        await rig.settle()
    assert rig.ami.last_originate()["Channel"] == "PJSIP/agent1002"  # though 1001 idled longer
    assert rig.acd.agent_state("1001").status.value == "available"
    connecting.cancel()
    await asyncio.gather(connecting, return_exceptions=True)


async def test_the_blend_rule_keeps_agents_for_inbound(rig: AcdRig) -> None:
    for agent in ("1001", "1002", "1003"):
        await rig.acd.login(agent)
    # The example's renewals: inbound first, one agent kept idle for inbound.
    rules = blend_rules(runtimes_from_config(example()))
    assert rules["renewals"] == BlendRule(inbound_first=True, min_idle_for_inbound=1)
    pool = AcdAgentPool(rig.acd, {"renewals": "general"}, blends=rules)
    eligible = pool.load("renewals").logged_in
    assert pool.load("renewals").idle == eligible - 1
    held = [pool.reserve("renewals", f"att-{i}") for i in range(eligible)]
    assert held[-1] is None and all(held[:-1])  # the last one stays for inbound
    pool.reload({"renewals": "general"}, {}, {"renewals": BlendRule(inbound_first=False)})
    assert pool.reserve("renewals", "att-last") is not None


async def test_inbound_first_counts_the_callers_waiting_for_the_campaigns_agents(rig: AcdRig) -> None:
    await rig.acd.login("1001")
    await rig.acd.login("1002")
    first = AcdAgentPool(rig.acd, {"renewals": "general"}, blends={"renewals": BlendRule(inbound_first=True)})
    assert first.reserve("renewals", "att-1") and first.reserve("renewals", "att-2")
    await rig.call("in-1", "sales")  # both sales agents are held: the caller waits
    assert rig.acd.call_state("in-1") == "waiting"
    assert first.load("renewals").idle == 1  # the waiting caller takes the first agent to free
    first.reload({"renewals": "general"}, {}, {"renewals": BlendRule(inbound_first=False)})
    assert first.load("renewals").idle == 2
