"""Shell: the agents' feature codes (the ``feature`` FastAGI route): log in with a PIN, log out, pause,
unpause, PCI pause/resume and record on demand, from the agent's own phone. The route answers the
call before any prompt when the dialplan has not (a phone hears nothing and sends no DTMF before)."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping

from callcenter.acd.pin import phone_sources
from callcenter.acd.service import ACD
from callcenter.asterisk import names
from callcenter.config import model as cm
from callcenter.errors import (
    AGIError,
    AGIHangupError,
    DomainError,
)
from callcenter.ports import AGISession

log = logging.getLogger(__name__)


class AgentFeatures:
    """The ``feature`` FastAGI route: what agents dial from their phones.

    The rendered dialplan runs ``AGI(agi://.../feature,<name>)`` for each code; ``agi_arg_1`` is
    the feature's name and ``agi_extension`` what was dialled (the pause code is followed by a
    reason's digits)::

        agent_login     the phone's own agent (an agent endpoint) or an id asked for, then the PIN
                        (``pin_attempts`` tries; 5 wrong PINs lock the id: ``callcenter.acd.pin``;
                        no digits at all, or a command of ours that failed, is no wrong PIN)
        agent_logout    agent_pause (+ reason digits; none = the first reason)   agent_unpause
        pci_pause       pci_resume   record_start   (on the agent's current call)

    The channel is answered first if it is not up (``CHANNEL STATUS``, then ``ANSWER``). Every
    command is bounded by ``command_timeout``; a hang-up ends the session quietly.
    Wire it: ``agi_server.add_route(names.AGI_FEATURE, AgentFeatures(acd).handle)``."""

    def __init__(self, acd: ACD, *, command_timeout: float = 10.0, pin_attempts: int = 3) -> None:
        self.acd = acd
        self.command_timeout = command_timeout
        self.pin_attempts = pin_attempts

    async def handle(self, session: AGISession) -> None:
        env = session.env
        feature = env.get("agi_arg_1", "")
        try:
            await answer_first(session, timeout=self.command_timeout)
            await self._run(session, feature, env)
        except AGIHangupError:
            return  # the phone hung up
        except AGIError as exc:  # a command of ours failed: nothing was counted against the agent
            log.warning("feature %s on %s failed: %r", feature, env.get("agi_channel"), exc)

    def _sound(self, prompt: str) -> str:
        config = self.acd.config
        return posixpath.join(
            config.asterisk.sounds_dir, cm.prompt_sound(prompt, config.center.default_language)
        )

    async def _play(self, session: AGISession, prompt: str) -> None:
        await session.command("STREAM FILE", self._sound(prompt), "", timeout=self.command_timeout + 60)

    async def _ask(self, session: AGISession, prompt: str, max_digits: int) -> str:
        """The digits typed (``""``: none before the timeout). A command Asterisk refuses raises
        ``AGICommandError``: the session ends there and nothing is counted."""
        reply = await session.command(
            "GET DATA", self._sound(prompt), 5000, max_digits, timeout=self.command_timeout + 60
        )
        if reply.hungup:
            raise AGIHangupError("hung up while entering digits")
        return reply.result or ""

    @staticmethod
    def _endpoint(env: Mapping[str, str]) -> str | None:
        """The PJSIP endpoint of the phone that dialled, or None."""
        tech, _, rest = env.get("agi_channel", "").partition("/")
        endpoint = rest.rpartition("-")[0] if "-" in rest else rest
        return endpoint if tech.upper() == "PJSIP" and endpoint else None

    def _caller_agent(self, env: Mapping[str, str]) -> str | None:
        endpoint = self._endpoint(env)
        agent = self.acd.config.agent_by_endpoint(endpoint) if endpoint else None
        return agent.id if agent is not None else None

    async def _run(self, session: AGISession, feature: str, env: Mapping[str, str]) -> None:
        acd = self.acd
        agent_id = self._caller_agent(env)
        if feature == "agent_login":
            sources = phone_sources(
                self._endpoint(env) or env.get("agi_channel", ""), env.get("agi_callerid", "")
            )
            await self._login(session, agent_id, sources)
            return
        if agent_id is None:
            await self._play(session, "invalid-option")
            return
        try:
            if feature == "agent_logout":
                await acd.logout(agent_id)
                await self._play(session, "agent-logged-out")
            elif feature == "agent_pause":
                code = acd.config.feature_codes.agent_pause
                digits = env.get("agi_extension", "").removeprefix(code)
                reason = acd.config.pause_reason_by_digits(digits) if digits else None
                if reason is None and not digits and acd.config.pause_reasons:
                    reason = next(iter(acd.config.pause_reasons.values()))
                if reason is None:
                    await self._play(session, "invalid-option")
                    return
                await acd.pause(agent_id, reason.code)
                await self._play(session, "agent-paused")
            elif feature == "agent_unpause":
                await acd.resume(agent_id)
                await self._play(session, "agent-unpaused")
            elif feature in ("pci_pause", "pci_resume", "record_start"):
                call_id = acd.call_of_agent(agent_id)
                done = False
                if call_id is not None:
                    if feature == "pci_pause":
                        done = await acd.pci_pause(call_id, by=agent_id)
                    elif feature == "pci_resume":
                        done = await acd.pci_resume(call_id, by=agent_id)
                    else:
                        done = await acd.record(call_id)
                prompt = {"pci_pause": "pci-paused", "pci_resume": "pci-resumed"}.get(feature, "please-hold")
                await self._play(session, prompt if done else "invalid-option")
            else:
                await self._play(session, "invalid-option")
        except DomainError:
            log.info("feature %s refused for agent %s", feature, agent_id, exc_info=True)
            await self._play(session, "invalid-option")

    async def _login(self, session: AGISession, agent_id: str | None, sources: tuple[str, ...]) -> None:
        acd = self.acd
        if agent_id is None:
            typed = await self._ask(session, "enter-agent-id", 8)
            if typed not in acd.config.agents:
                await self._play(session, "invalid-option" if typed else "no-input")
                return
            agent_id = typed
        for _ in range(self.pin_attempts):
            pin = await self._ask(session, "enter-pin", 12)
            if not pin:  # nothing typed (or the phone could not send DTMF): not a wrong PIN
                await self._play(session, "no-input")
                continue
            try:
                await acd.login(agent_id, pin=pin, sources=sources)
            except DomainError as exc:
                if exc.code == "locked_out":
                    await self._play(session, "locked-out")
                    return
                if exc.code == "bad_pin":
                    await self._play(session, "pin-invalid")
                    continue
                await self._play(session, "invalid-option")  # already logged in, ...
                return
            await self._play(session, "agent-logged-in")
            return


async def answer_first(session: AGISession, *, timeout: float) -> None:
    """Answer the channel unless it is up already (a dialplan without ``Answer()``: then a prompt
    would play to nobody and the phone could send no DTMF); said in the log, so it gets fixed."""
    status = await session.command("CHANNEL STATUS", timeout=timeout)
    if status.hungup:
        raise AGIHangupError("hung up before the feature code ran")
    if status.result_int == names.AST_STATE_UP:
        return
    log.warning(
        "%s: channel %s was not answered by the dialplan (state %s): answering",
        session.env.get("agi_network_script", "agi"),
        session.env.get("agi_channel", "?"),
        status.result,
    )
    reply = await session.command("ANSWER", timeout=timeout)
    if reply.hungup:
        raise AGIHangupError("hung up while being answered")
