"""The authorization table: every role x action x scope, allow or deny with its reason."""

from __future__ import annotations

import pytest

from callcenter.web.access import ACTIONS, ROLES, RULES, Decision, Principal, Scope, Target, decide

AGENT = Principal("alice", "agent", agent_id="1001")
SUPERVISOR = Principal("lee", "supervisor", frozenset({"billing"}), agent_id="9002")
ADMIN = Principal("root", "admin")

OWN = Target(agent_id="1001", queues=frozenset({"sales"}))
OTHER_IN_BILLING = Target(agent_id="1005", queues=frozenset({"billing", "general"}))
OTHER_ELSEWHERE = Target(agent_id="1003", queues=frozenset({"support"}))


@pytest.mark.parametrize(
    ("who", "action", "target", "allowed", "reason"),
    [
        (AGENT, "agent.state", OWN, True, ""),
        (AGENT, "agent.state", OTHER_IN_BILLING, False, "out_of_scope"),
        (AGENT, "call.control", Target(agent_id="1001"), True, ""),
        (AGENT, "call.control", Target(agent_id=None), False, "out_of_scope"),
        (AGENT, "agents.view", Target(), False, "role_not_allowed"),
        (AGENT, "monitor.control", OWN, False, "role_not_allowed"),
        (AGENT, "campaign.control", Target(), False, "role_not_allowed"),
        (AGENT, "campaign.preview", Target(agent_id="1001"), True, ""),
        (AGENT, "campaign.preview", Target(agent_id="1002"), False, "out_of_scope"),
        (AGENT, "status.view", Target(), True, ""),
        (SUPERVISOR, "agent.state", OTHER_IN_BILLING, True, ""),
        (SUPERVISOR, "agent.state", OTHER_ELSEWHERE, False, "out_of_scope"),
        (SUPERVISOR, "agent.state", Target(agent_id="9999"), False, "out_of_scope"),
        (SUPERVISOR, "call.control", Target(queues=frozenset({"billing"})), True, ""),
        (SUPERVISOR, "monitor.control", Target("1005", frozenset({"billing"}), acting_as="9002"), True, ""),
        (
            SUPERVISOR,
            "monitor.control",
            Target("1005", frozenset({"billing"}), acting_as="9001"),
            False,
            "not_yourself",
        ),
        (SUPERVISOR, "monitor.control", OTHER_ELSEWHERE, False, "out_of_scope"),
        (SUPERVISOR, "campaign.view", Target(), True, ""),
        (SUPERVISOR, "campaign.control", Target(), False, "role_not_allowed"),
        (SUPERVISOR, "campaign.pause", Target(queues=frozenset({"billing"})), True, ""),
        (SUPERVISOR, "campaign.pause", Target(queues=frozenset({"sales"})), False, "out_of_scope"),
        (AGENT, "campaign.pause", Target(queues=frozenset({"billing"})), False, "role_not_allowed"),
        (SUPERVISOR, "events.view", OTHER_IN_BILLING, True, ""),
        (SUPERVISOR, "events.view", OTHER_ELSEWHERE, False, "out_of_scope"),
        (AGENT, "events.view", OWN, True, ""),
        (AGENT, "events.view", OTHER_IN_BILLING, False, "out_of_scope"),
        (SUPERVISOR, "users.manage", Target(), False, "role_not_allowed"),
        (ADMIN, "agent.state", OTHER_ELSEWHERE, True, ""),
        (ADMIN, "monitor.control", Target(acting_as="9001"), True, ""),
        (ADMIN, "campaign.control", Target(), True, ""),
        (ADMIN, "users.manage", Target(), True, ""),
        (ADMIN, "no.such.action", Target(), False, "role_not_allowed"),
        (Principal("x", "guest"), "status.view", Target(), False, "role_not_allowed"),
    ],
)
def test_the_table(who: Principal, action: str, target: Target, allowed: bool, reason: str) -> None:
    assert decide(who, action, target) == Decision(allowed, reason)


def test_an_agent_without_an_agent_id_owns_nothing() -> None:
    assert not decide(Principal("a", "agent"), "agent.state", Target(agent_id=None)).allowed


def test_admin_may_do_every_action_and_only_admin_manages_the_center() -> None:
    assert {action for (role, action) in RULES if role == "admin"} == ACTIONS
    for action in ("users.manage", "config.apply", "recordings.manage", "campaign.control"):
        assert [r for r in ROLES if (r, action) in RULES] == ["admin"]
    assert all(scope is Scope.ANY for (role, _), scope in RULES.items() if role == "admin")
