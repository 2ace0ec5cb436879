"""Pure: who may do what, as one table: role x action -> the scope within which it is allowed.

Roles: ``agent`` (its own state and its own calls), ``supervisor`` (scoped to its queues:
monitoring, agents' states, calls, reports), ``admin`` (everything, campaigns and users included).
``decide`` answers allow or deny with a stable reason (``role_not_allowed``, ``out_of_scope``,
``not_yourself``) for a principal, an action and the target the request touches.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

ROLES: Final = ("agent", "supervisor", "admin")


class Scope(enum.Enum):
    ANY = "any"  # whatever the target
    OWN_AGENT = "own_agent"  # the target is the principal's own agent (or its call)
    OWN_QUEUES = "own_queues"  # the target touches one of the principal's queues


@dataclass(frozen=True)
class Principal:
    """An authenticated user: ``agent_id`` binds an agent (or a supervisor) to its own id."""

    name: str
    role: str
    queues: frozenset[str] = frozenset()
    agent_id: str | None = None


@dataclass(frozen=True)
class Target:
    """What a request touches: an agent (or the agent of a call), the queues involved, and the
    id the request claims to act as (a supervisor id, a previewing agent)."""

    agent_id: str | None = None
    queues: frozenset[str] = frozenset()
    acting_as: str | None = None
    label: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


# role x action -> scope; a pair absent from the table is denied.
RULES: Final[Mapping[tuple[str, str], Scope]] = {
    # the wallboard's numbers through the API
    ("agent", "status.view"): Scope.ANY,
    ("supervisor", "status.view"): Scope.ANY,
    ("admin", "status.view"): Scope.ANY,
    # every agent's state
    ("supervisor", "agents.view"): Scope.ANY,
    ("admin", "agents.view"): Scope.ANY,
    # log in, log out, pause, resume an agent
    ("agent", "agent.state"): Scope.OWN_AGENT,
    ("supervisor", "agent.state"): Scope.OWN_QUEUES,
    ("admin", "agent.state"): Scope.ANY,
    # a live call: PCI pause and resume, record, transfer
    ("agent", "call.control"): Scope.OWN_AGENT,
    ("supervisor", "call.control"): Scope.OWN_QUEUES,
    ("admin", "call.control"): Scope.ANY,
    # the event stream: each change is shown to whom it touches (an agent's own agent and calls,
    # a supervisor's queues)
    ("agent", "events.view"): Scope.OWN_AGENT,
    ("supervisor", "events.view"): Scope.OWN_QUEUES,
    ("admin", "events.view"): Scope.ANY,
    # listen, whisper, barge
    ("supervisor", "monitor.view"): Scope.ANY,
    ("admin", "monitor.view"): Scope.ANY,
    ("supervisor", "monitor.control"): Scope.OWN_QUEUES,
    ("admin", "monitor.control"): Scope.ANY,
    # campaigns
    ("supervisor", "campaign.view"): Scope.ANY,
    ("admin", "campaign.view"): Scope.ANY,
    ("admin", "campaign.control"): Scope.ANY,
    # pause and resume a campaign (a supervisor: one whose queue is its own)
    ("supervisor", "campaign.pause"): Scope.OWN_QUEUES,
    ("admin", "campaign.pause"): Scope.ANY,
    ("agent", "campaign.preview"): Scope.OWN_AGENT,
    ("admin", "campaign.preview"): Scope.ANY,
    # the center itself
    ("admin", "users.manage"): Scope.ANY,
    ("admin", "config.apply"): Scope.ANY,
    ("admin", "recordings.manage"): Scope.ANY,
}

ACTIONS: Final = frozenset(action for _, action in RULES)


def decide(principal: Principal, action: str, target: Target) -> Decision:
    """Allow or deny ``action`` on ``target`` for ``principal`` (an unknown action is denied)."""
    scope = RULES.get((principal.role, action))
    if scope is None:
        return Decision(False, "role_not_allowed")
    if scope is Scope.ANY:
        return Decision(True)
    if target.acting_as is not None and target.acting_as != principal.agent_id:
        return Decision(False, "not_yourself")
    if scope is Scope.OWN_AGENT:
        own = principal.agent_id is not None and target.agent_id == principal.agent_id
        return Decision(True) if own else Decision(False, "out_of_scope")
    return Decision(True) if target.queues & principal.queues else Decision(False, "out_of_scope")
