"""Pure: who may monitor whom, and the PIN/agent/mode flows the spy route runs on the IVR engine."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Final

from callcenter.acd.pin import phone_sources
from callcenter.config import model as m

MODES: Final = ("listen", "whisper", "barge")
MODE_KEYS: Final[Mapping[str, str]] = {"4": "listen", "5": "whisper", "6": "barge"}
_CHANNEL = re.compile(r"^(?:PJSIP|SIP)/([A-Za-z0-9_.+-]+?)-[0-9a-fA-F]{8}$")
_AGENT_ID = re.compile(r"^[0-9]{1,16}$")

# ids of the engine's internal flows (not in dialplans/)
PIN_FLOW: Final = "__spy_pin"
AGENT_FLOW: Final = "__spy_agent"
MODE_FLOW: Final = "__spy_mode"


def endpoint_of(channel: str) -> str | None:
    """``PJSIP/super9001-0000000a`` -> ``super9001`` (``None`` for anything else)."""
    match = _CHANNEL.match(channel)
    return match.group(1) if match else None


def agent_from_extension(extension: str, code: str) -> str | None:
    """The agent id dialled after ``code`` (``*811001`` with ``*81`` -> ``1001``), ``""`` when only
    the code was dialled, ``None`` when the extension is not that code's."""
    if not extension.startswith(code):
        return None
    rest = extension[len(code) :]
    return rest if rest == "" or _AGENT_ID.match(rest) else None


def local_peer(channel: str) -> str | None:
    """The other half of a Local channel (``Local/x@ctx-00000001;1`` <-> ``...;2``), else None."""
    if not channel.startswith("Local/") or channel[-2:] not in (";1", ";2"):
        return None
    return channel[:-1] + ("2" if channel[-1] == "1" else "1")


def in_scope(config: m.Config, supervisor: m.Supervisor, agent: m.Agent) -> bool:
    """The agent takes calls of at least one queue the supervisor may monitor."""
    allowed = set(supervisor.queues)
    return any(q in allowed for q in config.queues_of(agent))


def spy_target(agent: m.Agent) -> str:
    """ChanSpy's channel prefix for the agent's phone: ``PJSIP/<endpoint>-`` (the dash keeps
    ``agent100`` from matching ``agent1001``'s channels)."""
    return f"PJSIP/{agent.endpoint}-"


def _hangup(nid: str) -> m.HangupNode:
    return m.HangupNode(id=nid)


def _collect_flow(
    flow_id: str, *, prompt: str, variable: str, max_digits: int, max_attempts: int, timeout: float
) -> m.Flow:
    """A one-question flow: collect digits ended by ``#`` into ``variable``, then hang up
    (node ``done``), or give up (node ``none``)."""
    return m.Flow(
        id=flow_id,
        start=variable,
        nodes=m.frozen_map(
            {
                variable: m.CollectNode(
                    id=variable,
                    prompt=prompt,
                    variable=variable,
                    min_digits=1,
                    max_digits=max_digits,
                    terminator="#",
                    timeout=timeout,
                    max_attempts=max_attempts,
                    next="done",
                    fallback="none",
                ),
                "done": _hangup("done"),
                "none": _hangup("none"),
            }
        ),
    )


def engine_config(config: m.Config, *, pin_timeout: float, max_pin_digits: int = 16) -> m.Config:
    """``config`` plus the three small flows the spy route runs on the IVR engine."""
    pin = _collect_flow(
        PIN_FLOW, prompt="enter-pin", variable="pin", max_digits=max_pin_digits, max_attempts=1,
        timeout=pin_timeout,
    )  # fmt: skip
    agent = _collect_flow(
        AGENT_FLOW, prompt="enter-agent-id", variable="agent", max_digits=16, max_attempts=2,
        timeout=pin_timeout,
    )  # fmt: skip
    mode = m.Flow(
        id=MODE_FLOW,
        start="mode",
        nodes=m.frozen_map(
            {
                "mode": m.MenuNode(
                    id="mode",
                    prompt="spy-mode-menu",
                    choices=m.frozen_map(MODE_KEYS),
                    timeout=pin_timeout,
                    max_attempts=2,
                    invalid_prompt="invalid-option",
                    fallback="none",
                ),  # fmt: skip
                **{name: _hangup(name) for name in (*MODES, "none")},
            }
        ),
    )
    flows = {**config.flows, PIN_FLOW: pin, AGENT_FLOW: agent, MODE_FLOW: mode}
    return dataclasses.replace(config, flows=m.frozen_map(flows))


def pin_sources(endpoint: str, caller_id: str) -> tuple[str, ...]:
    """Where a monitoring PIN comes from on a phone (``callcenter.acd.pin.phone_sources``)."""
    return phone_sources(endpoint, caller_id)
