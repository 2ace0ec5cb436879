"""The rendered configuration run by the simulated PBX: the dialplan uses only what the simulator
implements, a caller whose controller is down takes the static fallback, and ``apply`` reloads a
changed dialplan over a real AMI link."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.asterisk import names
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import AutojumpClock
from callcenter.config import model as m
from callcenter.config.render import AMIReloader, apply, render, write_files
from callcenter.errors import AMIActionError
from callcenter.sim import SimulatedPBX
from callcenter.sim.dialplan import parse
from tests.centers import REPO, example
from tests.fakes import SimPerson, within


def _example() -> m.Config:
    return example(env={"CC_AMI_SECRET": "sim-secret"})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there now: a FastAGI connection is refused


def test_rendered_dialplan_uses_only_what_the_simulator_runs() -> None:
    files = {f.name: f.text for f in render(_example())}
    dialplan = parse(files["extensions.conf"], check=True)
    for ctx in (v for k, v in vars(names).items() if k.startswith("CTX_")):
        assert dialplan.has_context(ctx), ctx
    assert dialplan.exists(names.CTX_INBOUND, "18005550100")
    assert dialplan.exists(names.CTX_INBOUND, "+18005550100")
    assert dialplan.exists(names.CTX_AGENT_PHONES, "*811001")  # through include => cc-features
    assert dialplan.exists(names.CTX_AGENT_PHONES, "*132")
    assert not dialplan.exists(names.CTX_AGENT_PHONES, "*99")


NEW_YORK = ZoneInfo("America/New_York")
MONDAY_10AM = dt.datetime(2026, 11, 16, 10, 0, tzinfo=NEW_YORK).timestamp()
SUNDAY_10AM = dt.datetime(2026, 11, 22, 10, 0, tzinfo=NEW_YORK).timestamp()


async def _fallback_call(tmp_path: Path, clock: AutojumpClock) -> SimPerson:
    """A call with the controller down, the fallback checking the hours (``closed_prompt``)."""
    config = _example()
    assert config.fallback is not None
    closing = dataclasses.replace(config.fallback, closed_prompt="fallback-closed")
    etc = tmp_path / "etc"
    write_files(render(dataclasses.replace(config, fallback=closing)), etc)
    sim = SimulatedPBX(
        etc,
        clock=clock,
        agi_host="127.0.0.1",
        agi_port=_closed_port(),
        recordings_dir=tmp_path / "rec",
        sounds_dirs=[REPO / "ivr_prompts"],
    )
    async with sim:
        caller = SimPerson(hang_up_on_hold=False)  # presses nothing, hangs up in voicemail
        sim.pbx.inbound_call(
            "18005550100", caller_num="+12125550143", context=names.CTX_INBOUND, owner=caller
        )
        await within(caller.gone.wait(), timeout=600, clock=clock)
    return caller


async def test_controller_down_in_hours_rings_the_agents(
    tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    caller = await _fallback_call(tmp_path, autojump_clock.starting_at(MONDAY_10AM))
    assert caller.apps == [
        "NoOp",
        "Answer",
        "AGI",  # refused: AGISTATUS=FAILURE
        "GotoIf",
        "NoOp",  # cc-fallback
        "Answer",
        "GotoIfTime",  # Monday 10:00 in New York: open
        "Playback",
        "Dial",  # the ring group: no phone registered, so on at once
        "VoiceMail",
    ]
    assert caller.paths == ["/var/lib/asterisk/sounds/callcenter/en/fallback-message", "vm-intro"]


async def test_controller_down_after_hours_goes_to_voicemail(
    tmp_path: Path, autojump_clock: AutojumpClock
) -> None:
    caller = await _fallback_call(tmp_path, autojump_clock.starting_at(SUNDAY_10AM))
    assert caller.apps == [
        "NoOp",
        "Answer",
        "AGI",
        "GotoIf",
        "NoOp",
        "Answer",
        "GotoIfTime",  # closed on Sundays: no ring
        "GotoIfTime",
        "Playback",
        "VoiceMail",
    ]
    assert caller.paths == ["/var/lib/asterisk/sounds/callcenter/en/fallback-closed", "vm-intro"]


def _did_step(sim: SimulatedPBX) -> str:
    step = sim.dialplan.find(names.CTX_INBOUND, "15550109999", 1)
    assert step is not None
    return f"{step.app}({step.data})"


async def test_apply_reloads_the_simulators_dialplan_over_ami(tmp_path: Path) -> None:
    """As in Asterisk, the controller's user (no system or config write class) is refused
    Reload; ``callcenter apply``'s own user (write = config) reloads."""
    config = _example()
    etc = tmp_path / "etc"
    write_files(render(config), etc)
    new_number = m.Number(number="+15550109999", flow="main", label="added by ops")
    changed = dataclasses.replace(config, numbers=(*config.numbers, new_number))
    async with SimulatedPBX(etc, recordings_dir=tmp_path / "rec") as sim:
        assert _did_step(sim) == "NoOp(unknown DID ${EXTEN})"  # only the catch-all so far
        ami = config.asterisk.ami
        apply_user = config.asterisk.ami_apply
        assert apply_user is not None
        async with AMIClient(
            host="127.0.0.1",
            port=sim.ami_port,
            username=ami.username,
            secret=ami.secret.value,
            ping_interval=0,
        ) as controller:
            with pytest.raises(AMIActionError) as refused:
                await AMIReloader(controller, timeout=5)("pbx_config.so")
            assert refused.value.reason == "Permission denied"
        async with AMIClient(
            host="127.0.0.1",
            port=sim.ami_port,
            username=apply_user.username,
            secret=apply_user.secret.value,
            ping_interval=0,
        ) as client:
            result = await apply(changed, etc, AMIReloader(client, timeout=5))
        assert "pbx_config.so" in result.reloaded
        assert _did_step(sim) == "NoOp(DID 15550109999 flow main)"
