"""Shell: the ACD's side of outbound: which agents may take a campaign's calls, and connecting one."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from callcenter.outbound.dialer import (
    AgentLoad,
    Attempt,
)
from callcenter.outbound.runtime import CampaignRuntime
from callcenter.ports import QueuedCall

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BlendRule:
    """How a campaign shares its agents with inbound (``campaigns.<id>.blend``): with
    ``inbound_first``, inbound callers already waiting for the campaign's agents go first;
    ``min_idle_for_inbound`` of its agents stay idle for inbound callers about to arrive."""

    inbound_first: bool = True
    min_idle_for_inbound: int = 0


def blend_rules(runtimes: Iterable[CampaignRuntime]) -> dict[str, BlendRule]:
    """Each campaign's blend rule, as its runtime carries it."""
    return {rt.id: BlendRule(rt.inbound_first, rt.min_idle_for_inbound) for rt in runtimes}


class AcdAgentPool:
    """``AgentPool`` over ``callcenter.acd.service.ACD`` (used through its public surface: ``config``,
    ``agents``, ``enqueue``, ``call_state``, ``clock``).

    ``load``: the logged-in agents whose skills meet the campaign queue's (``queues``: campaign id
    -> queue id) and the campaign's own (``skills``: campaign id -> skill -> minimum level):
    available ones are idle, reserved / ringing / on a call are busy since their state began,
    wrap-up ones are in wrap-up; an agent held for one of this campaign's attempts counts as idle
    (the pacer subtracts the attempts in flight). ``reserve``: hold one available agent for an
    attempt before it is dialled (``ACD.hold_agent``: inbound cannot take it), never one that an
    inbound caller already waiting could have; ``release``: give it back when the attempt ends
    without a person. ``connect``: hands the person to the ACD as a queued call (``call_id`` = the
    attempt id, the held agent as ``reserved_agent``, the channel stays in the ``outbound`` AGI
    until the agent's leg bridges it) and waits up to ``timeout`` for the ACD to report it
    connected. Talk and wrap-up times of the calls it connected come back through
    ``take_finished``."""

    def __init__(
        self,
        acd: Any,
        queues: Mapping[str, str],
        *,
        skills: Mapping[str, Mapping[str, int]] | None = None,
        blends: Mapping[str, BlendRule] | None = None,
        poll: float = 0.05,
        priority: int = 100,
    ) -> None:
        self.acd = acd
        self.queues = dict(queues)
        self.skills = dict(skills or {})
        self.blends = dict(blends or {})
        self.poll = poll
        self.priority = priority
        self._eligible: dict[str, list[str]] = {}
        self._ours: dict[str, str] = {}  # call id -> campaign id, for calls this pool connected
        self._talk_started: dict[str, tuple[str, float]] = {}  # agent -> (call id, since)
        self._wrap_started: dict[str, tuple[str, float, float]] = {}  # agent -> (call id, talk, since)
        self._finished: list[tuple[str, float, float]] = []
        self._held: dict[str, tuple[str, str]] = {}  # attempt id -> (agent id, campaign id)

    def reload(
        self,
        queues: Mapping[str, str],
        skills: Mapping[str, Mapping[str, int]],
        blends: Mapping[str, BlendRule] | None = None,
    ) -> None:
        """New campaigns -> queues, skills and blend rules (a new configuration): eligible agents
        are found again."""
        self.queues = dict(queues)
        self.skills = dict(skills)
        if blends is not None:
            self.blends = dict(blends)
        self._eligible.clear()

    def _agents_for(self, campaign: str) -> list[str]:
        cached = self._eligible.get(campaign)
        if cached is not None:
            return cached
        config = self.acd.config
        queue = config.queues.get(self.queues.get(campaign, ""))
        needs: dict[str, int] = dict(queue.skills) if queue is not None else {}
        for skill, level in self.skills.get(campaign, {}).items():
            needs[skill] = max(level, needs.get(skill, 0))
        eligible = [
            agent_id
            for agent_id, agent in config.agents.items()
            if all(agent.skills.get(skill, 0) >= level for skill, level in needs.items())
        ]
        self._eligible[campaign] = eligible
        return eligible

    def load(self, campaign: str) -> AgentLoad:
        now = self.acd.clock.now()
        idle = 0
        logged_in = 0
        paused = 0
        busy: list[float] = []
        wrapping: list[float] = []
        for agent_id in self._agents_for(campaign):
            state = self.acd.agents.get(agent_id)
            if state is None:
                continue
            status = str(state.status)
            self._follow(agent_id, status, state.call_id, float(state.since))
            if status == "logged_out":
                continue
            if status in ("paused", "not_ready"):
                paused += 1
                continue
            logged_in += 1
            if status == "available" or self._held.get(state.call_id or "", ("", ""))[1] == campaign:
                idle += 1
            elif status == "wrap_up":
                wrapping.append(max(0.0, now - float(state.since)))
            else:
                busy.append(max(0.0, now - float(state.since)))
        # Blended agents: inbound callers already waiting for these agents go first, and the
        # blend rule's reserve stays idle for inbound, so the dialer counts only the idle agents
        # they leave over (else a person it reaches finds no agent and is abandoned).
        idle = max(0, idle - self._kept_for_inbound(campaign))
        return AgentLoad(logged_in, idle, tuple(busy), tuple(wrapping), paused=paused)

    def _kept_for_inbound(self, campaign: str) -> int:
        rule = self.blends.get(campaign, BlendRule())
        waiting = self._inbound_waiting(campaign) if rule.inbound_first else 0
        return waiting + rule.min_idle_for_inbound

    def reserve(self, campaign: str, attempt_id: str, *, agent_id: str | None = None) -> str | None:
        """Hold an agent for ``attempt_id`` before it is dialled: ``agent_id`` (preview: the agent
        who chose to dial) or the eligible available agent idle longest. None when there is none
        to spare: every available one is kept for inbound by the campaign's blend rule."""
        eligible = self._agents_for(campaign)
        available = sorted(
            (float(s.since), a)
            for a in eligible
            if (s := self.acd.agents.get(a)) is not None and str(s.status) == "available"
        )
        if len(available) <= self._kept_for_inbound(campaign):
            return None
        if agent_id is not None:
            if agent_id not in {a for _, a in available}:
                return None
            chosen = agent_id
        else:
            chosen = available[0][1]
        if not self.acd.hold_agent(chosen, attempt_id):
            return None
        self._held[attempt_id] = (chosen, campaign)
        return chosen

    def release(self, attempt_id: str, *, reason: str = "hold_released") -> None:
        """The attempt ended without a person for its held agent: the agent is free at once."""
        held = self._held.pop(attempt_id, None)
        if held is not None:
            self.acd.release_agent(held[0], attempt_id, reason)

    def held(self) -> dict[str, str]:
        """Attempt id -> the agent held for it."""
        return {attempt: agent for attempt, (agent, _) in self._held.items()}

    def _inbound_waiting(self, campaign: str) -> int:
        queue = self.queues.get(campaign)
        snapshot = getattr(self.acd, "snapshot", None)
        if queue is None or snapshot is None:
            return 0
        config = self.acd.config
        mine = set(self._agents_for(campaign))
        served = {
            q.id
            for q in config.queues.values()
            if any(config.agent_serves(config.agents[a], q) for a in mine if a in config.agents)
        }
        return sum(
            1
            for call_id, c in snapshot()["calls"].items()
            if c["state"] == "waiting" and c["queue"] in served and call_id not in self._ours
        )

    def _follow(self, agent_id: str, status: str, call_id: str | None, since: float) -> None:
        """Notice a campaign call's talk and wrap-up ending (agent states as ``load`` sees them)."""
        talk = self._talk_started.get(agent_id)
        wrap = self._wrap_started.get(agent_id)
        if status == "on_call" and call_id in self._ours and talk is None:
            self._talk_started[agent_id] = (call_id, since)
        elif status == "wrap_up" and talk is not None:
            del self._talk_started[agent_id]
            self._wrap_started[agent_id] = (talk[0], since - talk[1], since)
        elif status not in ("on_call", "wrap_up") and wrap is not None:
            del self._wrap_started[agent_id]
            campaign = self._ours.pop(wrap[0], None)
            if campaign is not None:
                self._finished.append((campaign, wrap[1], max(0.0, since - wrap[2])))

    def take_finished(self) -> list[tuple[str, float, float]]:
        """(campaign, talk seconds, wrap-up seconds) of campaign calls finished since last asked."""
        finished, self._finished = self._finished, []
        return finished

    async def connect(self, campaign: str, *, channel: str, attempt: Attempt, timeout: float) -> str | None:
        call_id = attempt.attempt_id
        held = self._held.pop(call_id, None)
        try:
            return await self._connect(campaign, channel, attempt, timeout, held)
        finally:
            # Whatever happened (connected, too late, refused), the hold is spent: an agent still
            # held for this attempt (the call never reached it) is free again.
            if held is not None:
                self.acd.release_agent(held[0], call_id, "hold_released")

    async def _connect(
        self,
        campaign: str,
        channel: str,
        attempt: Attempt,
        timeout: float,
        held: tuple[str, str] | None,
    ) -> str | None:
        queue = self.queues.get(campaign)
        if queue is None:
            return None
        call_id = attempt.attempt_id
        await self.acd.enqueue(
            QueuedCall(
                call_id,
                channel,
                queue,
                skills=dict(self.skills.get(campaign, {})),
                priority=self.priority,
                caller_number=attempt.contact.phone,
                data=dict(attempt.contact.data),
                redirect_to_hold=False,
                direction="outbound",
                campaign_id=campaign,
                reserved_agent=held[0] if held is not None else None,
            )
        )
        clock = self.acd.clock
        deadline = clock.now() + timeout
        while True:
            if self.acd.call_state(call_id) == "connected":
                self._ours[call_id] = campaign
                agent = self.acd.snapshot()["calls"].get(call_id, {}).get("agent_id")
                return str(agent) if agent else "unknown"
            if clock.now() >= deadline:
                # Too late: the person hears the identification message and is hung up, which the
                # ACD sees as the caller leaving. An ACD that can withdraw a call does so at once,
                # so that no agent leg bridges the channel during the message.
                withdraw = getattr(self.acd, "withdraw", None)
                if withdraw is not None:
                    await withdraw(call_id)
                return None
            await clock.sleep(self.poll)
