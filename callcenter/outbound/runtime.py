"""Pure: a campaign as the dialer runs it: the pure settings plus the telephony around them, from config."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.asterisk import names
from callcenter.config.model import prompt_sound
from callcenter.outbound.dialer import (
    DAY,
    CallingWindow,
    CampaignSettings,
    Mode,
    Outcome,
    PacingSettings,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ runtime
@dataclass(frozen=True)
class CampaignRuntime:
    """A campaign as the service runs it: the pure settings plus the telephony around them."""

    settings: CampaignSettings
    caller_id: str = ""
    trunk: str = "dialer"
    queue: str = ""
    timezone: str = "UTC"
    default_region: str | None = None
    amd: bool = True
    amd_message: str | None = None
    """Prompt left on a machine (amd_action = message); None hangs up and retries."""
    identification_prompt: str = ""
    ring_timeout: float = 25.0
    connect_within: float = 2.0
    # Through the trunk's checked context (the rendered cc-dial-<trunk>: the dial-out policy
    # again, then Dial); /n keeps the Local pair, so the leg the dialer follows stays the same.
    dial_template: str = names.CAMPAIGN_DIAL_TEMPLATE
    name: str = ""
    enabled: bool = True
    """False: the campaign places no call (the dialer plans none, the database refuses any)."""
    skills: Mapping[str, int] = field(default_factory=dict)
    """Skills (minimum levels) an agent needs for the campaign's calls, beyond its queue's."""
    inbound_first: bool = True
    """Blended agents: inbound callers already waiting for them go first (``blend.inbound_first``)."""
    min_idle_for_inbound: int = 0
    """Blended agents: this many stay idle for inbound (``blend.min_idle_for_inbound``)."""
    exten: str = "s"
    """The ``cc-outbound`` extension: the campaign's own (rendered from config: AMD, message and
    identification set there) or ``s`` (driven by the CC_AMD / CC_AMD_MESSAGE variables)."""

    @property
    def id(self) -> str:
        return self.settings.name


def runtime_from_config(
    campaign: Any,
    *,
    default_region: str | None = None,
    sounds_dir: str | None = None,
    language: str = "en",
) -> CampaignRuntime:
    """Build a ``CampaignRuntime`` from ``callcenter.config.model.Campaign`` (duck-typed).

    ``sounds_dir`` and ``language`` (``config.asterisk.sounds_dir``, the center's default
    language) turn the campaign's prompt ids into the sound names the AGI plays, as the rendered
    dialplan and the IVR do (``<sounds_dir>/<language>/<prompt id>``); without them the ids are
    played as they are."""

    def sound(prompt: str) -> str:
        if not prompt or sounds_dir is None:
            return prompt
        return posixpath.join(sounds_dir, prompt_sound(prompt, language))

    retry = campaign.retry
    delays = {
        Outcome.BUSY: float(retry.busy),
        Outcome.NO_ANSWER: float(retry.no_answer),
        Outcome.MACHINE: float(retry.machine),
        Outcome.FAILED: float(retry.failed),
    }
    window = CallingWindow(campaign.window.start, campaign.window.end, frozenset(campaign.window.days))
    settings = CampaignSettings(
        name=campaign.id,
        mode=Mode(str(campaign.mode)),
        window=window,
        max_attempts=int(campaign.max_attempts),
        retry_delays={**CampaignSettings(name=campaign.id).retry_delays, **delays},
        abandon_window=float(campaign.abandon_window_days) * DAY,
        pacing=PacingSettings(
            abandon_limit=float(campaign.abandon_limit), max_lines_per_agent=float(campaign.max_ratio)
        ),
    )
    leaves_message = str(campaign.amd_action) == "message" and bool(campaign.amd_message)
    return CampaignRuntime(
        settings=settings,
        caller_id=campaign.caller_id,
        trunk=campaign.trunk or "dialer",
        queue=campaign.queue,
        timezone=campaign.timezone,
        default_region=default_region,
        amd=bool(campaign.amd),
        amd_message=sound(campaign.amd_message) if leaves_message else None,
        identification_prompt=sound(campaign.identification_prompt),
        ring_timeout=float(campaign.ring_timeout),
        connect_within=float(campaign.connect_within),
        name=campaign.name,
        enabled=bool(campaign.enabled),
        skills=dict(campaign.skills),
        inbound_first=bool(campaign.blend.inbound_first),
        min_idle_for_inbound=int(campaign.blend.min_idle_for_inbound),
        exten=campaign.id,
    )


def runtimes_from_config(config: Any) -> list[CampaignRuntime]:
    """Every campaign of ``config`` (``callcenter.config.model.Config``) as the dialer runs it."""
    return [
        runtime_from_config(
            c,
            default_region=config.center.country,
            sounds_dir=config.asterisk.sounds_dir,
            language=config.center.default_language,
        )
        for c in config.campaigns.values()
    ]
