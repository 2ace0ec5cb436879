"""Shell: the in-queue callback offer (the ``callback`` FastAGI route).

A caller who has waited past its queue's ``callback_offer_after`` is redirected by the ACD to
``cc-callback-offer``, which runs this route: the announcement the ACD set (``CC_PROMPT``, if
any), then the offer; the key ``1`` keeps the caller's place in line with a callback on its own
number (the ACD checks the dial-out policy), confirms and hangs up. Any other key, none, or a
refused callback: the route returns and the dialplan puts the caller back on hold. The agent is
rung first when the call's turn comes, then the caller's number is dialled (``cc-transfer``).
"""

from __future__ import annotations

import logging
import posixpath

from callcenter.acd.service import ACD
from callcenter.asterisk import names
from callcenter.config import model as cm
from callcenter.errors import AGIError, AGIHangupError, DomainError
from callcenter.ports import AGISession

log = logging.getLogger(__name__)

ACCEPT_KEY = "1"


class CallbackOffers:
    """The ``callback`` route. ``wait``: seconds the caller has to press the key."""

    def __init__(self, acd: ACD, *, command_timeout: float = 10.0, wait: float = 6.0) -> None:
        self.acd = acd
        self.command_timeout = command_timeout
        self.wait = wait
        self.offered = 0
        self.accepted = 0

    def _sound(self, prompt: str) -> str:
        config = self.acd.config
        return posixpath.join(
            config.asterisk.sounds_dir, cm.prompt_sound(prompt, config.center.default_language)
        )

    async def handle(self, session: AGISession) -> None:
        try:
            await self._offer(session)
        except AGIHangupError:
            return  # the caller left; the ACD sees its hangup
        except AGIError as exc:
            log.warning("callback offer on %s failed: %r", session.env.get("agi_channel"), exc)

    async def _offer(self, session: AGISession) -> None:
        call_id = await session.get_variable(names.VAR_CALL_ID) or ""
        number = self.acd.callback_number(call_id)
        if number is None:
            return  # not waiting any more, or no number we may call back: back to hold
        announcement = await session.get_variable(names.VAR_PROMPT) or ""
        for sound in (s for s in announcement.split("&") if s):
            await session.command("STREAM FILE", sound, "", timeout=self.command_timeout + 60)
        self.offered += 1
        reply = await session.command(
            "GET DATA",
            self._sound("callback-offer"),
            int(self.wait * 1000),
            1,
            timeout=self.command_timeout + self.wait + 60,
        )
        if reply.hungup:
            raise AGIHangupError("hung up during the callback offer")
        if (reply.result or "") != ACCEPT_KEY:
            return
        try:
            await self.acd.accept_callback(call_id, number)
        except DomainError as exc:  # answered meanwhile, or refused: the caller stays in line
            log.info("call %s: callback not taken: %s", call_id, exc)
            return
        self.accepted += 1
        await session.command(
            "STREAM FILE", self._sound("callback-accepted"), "", timeout=self.command_timeout + 60
        )
        await session.hangup()
