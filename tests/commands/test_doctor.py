"""``callcenter doctor``: what the example center needs from its PBX, the verdicts on canned
Asterisk 22 replies (``tests/fixtures/asterisk-doctor``, byte-exact), the simulator answering in
the same shapes, the command against the simulated PBX and on the command line, and (marked
``asterisk``) its report on a real Asterisk 22 with a SIPp phone registered."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.asterisk.ami import AMIParser, Message
from callcenter.asterisk.ami_client import AMIClient
from callcenter.cli import build_parser
from callcenter.commands import doctor as cmd
from callcenter.config import doctor as dr
from callcenter.config import model as cm
from callcenter.config.load import load
from callcenter.config.render import install_prompts, render, write_files
from callcenter.errors import AMIActionError
from callcenter.sim.people import AgentProfile, OutboundProfile, Scenario
from callcenter.sim.server import SimulatedPBX
from tests.asterisk_harness import (
    ADMIN_USER,
    RealAsterisk,
    example_center,
    free_port,
    music_dirs,
    rendered_files,
    require_asterisk,
    running_asterisk,
    short_tempdir,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "asterisk-doctor"
ALL = ("system", "call", "originate", "agent")  # the rendered user's write classes


# ============================================================================ helpers
def messages(name: str) -> list[Message]:
    data = (FIXTURES / name).read_bytes()
    parsed = AMIParser(greeting=data.startswith(b"Asterisk Call Manager/")).feed(data)
    return [m for m in parsed if isinstance(m, Message)]


def reply(name: str, *, listing: bool = False) -> dr.Reply:
    """A fixture as the AMI client hands it over: the response, or a list's events, or the
    error text."""
    msgs = messages(name)
    if msgs[0].name == "Error":
        return dr.Reply(error=msgs[0].get("Message"))
    return dr.Reply(tuple(msgs[1:] if listing else msgs[:1]))


def changed(r: dr.Reply, **headers: str) -> dr.Reply:
    """``r`` with some headers of its first message replaced."""
    first = r.messages[0]
    new = Message([(k, headers.get(k, v)) for k, v in first.headers])
    return dataclasses.replace(r, messages=(new, *r.messages[1:]))


@pytest.fixture(scope="module")
def config() -> cm.Config:
    return load(REPO / "dialplans", env={"CC_AMI_SECRET": "doctor-test"}).config


@pytest.fixture(scope="module")
def files(config: cm.Config) -> dict[str, str]:
    return {f.name: f.text for f in render(config)}


@pytest.fixture(scope="module")
def req(config: cm.Config, files: dict[str, str]) -> dr.Requirements:
    return dr.requirements(config, files, played=cmd.announced_sounds(config))


def facts_from_fixtures(req: dr.Requirements, **changes: object) -> dr.PBXFacts:
    """What the real Asterisk answered (see the fixtures' README), every module loaded."""
    loaded = reply("ModuleCheck-loaded.ami.txt")
    not_loaded = reply("ModuleCheck-not-loaded.ami.txt")
    modules = {n.name: loaded for n in req.modules} | {u: not_loaded for u in req.unwanted_modules}
    facts = dr.PBXFacts(
        "127.0.0.1:5038",
        "callcenter",
        greeting="Asterisk Call Manager/11.0.0",
        commands=reply("ListCommands.ami.txt"),
        settings=reply("CoreSettings.ami.txt"),
        data_dir=reply("Getvar-ASTDATADIR.ami.txt"),
        modules=modules,
        endpoints=reply("PJSIPShowEndpoints.ami.txt", listing=True),
        contacts=reply("PJSIPShowContacts.ami.txt", listing=True),
        trunks={
            "carrier": reply("PJSIPShowEndpoint-carrier.ami.txt", listing=True),
            "dialer": reply("PJSIPShowEndpoint-dialer.ami.txt", listing=True),
        },
    )
    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


DATA_DIR = "/work/build/ast/var/lib/asterisk"  # what the fixture's Getvar ASTDATADIR says


def all_files(req: dr.Requirements) -> dr.FileFacts:
    """Every sound and music file present, where the fixture's Asterisk reads them."""
    return dr.FileFacts(
        checked=True,
        where="here",
        sounds=frozenset(dr.sound_paths(req, DATA_DIR)),
        music={d: 3 for _, d in req.music},
    )


def by_name(checks: list[dr.Check]) -> dict[str, dr.Check]:
    return {c.name: c for c in checks}


# ============================================================================ requirements
def test_the_example_center_needs_what_its_rendered_config_uses(req: dr.Requirements) -> None:
    mods = {n.name: n.why for n in req.modules}
    assert mods["app_chanspy.so"] == "ChanSpy() in [cc-spy]"
    assert mods["res_agi.so"].startswith("AGI() in [cc-inbound]")
    assert mods["app_amd.so"] == "AMD() in [cc-outbound]"
    assert mods["app_waitforsilence.so"] == "WaitForSilence() in [cc-outbound]"
    assert mods["bridge_simple.so"] == "two-party bridges: Bridge() in [cc-agent-leg]"
    assert mods["chan_pjsip.so"].startswith("PJSIP channels")
    assert mods["codec_ulaw.so"].startswith("codec ulaw")
    assert mods["res_pjsip_outbound_registration.so"] == "outbound registration dialer-reg"
    assert mods["res_pjsip_endpoint_identifier_ip.so"].startswith("carriers identified by address")
    assert mods["res_pjsip_registrar.so"].startswith("phones register")
    assert mods["format_wav.so"] == "the center's prompts are WAV files"
    assert mods["pbx_config.so"] == "modules.conf loads it"  # only modules.conf names it
    assert "app_queue.so" in req.unwanted_modules and "app_queue.so" not in mods
    assert req.unknown_apps == ()

    core = {n.name: n.why for n in req.core_sounds}
    assert core["vm-intro"] == "the voicemail greeting: VoiceMail() in [cc-fallback]"
    assert core["digits/90"] == "queue announcements (position, expected wait)"
    said = {f"digits/{n}" for n in [*range(21), *range(30, 100, 10)]}
    assert said == {name for name in core if name.startswith("digits/")}  # 23 is digits/20&digits/3

    own = {n.name for n in req.own_sounds}
    assert "/var/lib/asterisk/sounds/callcenter/en/welcome" in own
    assert "/var/lib/asterisk/sounds/callcenter/es/welcome" in own
    assert "/var/lib/asterisk/sounds/callcenter/en/queue-position" in own
    assert len(own) == 86  # 43 prompts in en and es

    assert req.music == (
        ("default", "/var/lib/asterisk/moh/default"),
        ("calm", "/var/lib/asterisk/moh/calm"),
        ("upbeat", "/var/lib/asterisk/moh/upbeat"),
    )
    assert [p.name for p in req.phones] == [
        *(f"agent100{i}" for i in range(1, 7)),
        "super9001",
        "super9002",
    ]
    assert [t.name for t in req.trunks] == ["carrier", "dialer"]
    assert req.ami_user == "callcenter"
    assert req.ami_read == ("system", "call", "dtmf", "user", "agent")


def test_dialplan_and_conf_parsing(config: cm.Config) -> None:
    text = """; comment
[ctx-a]
exten => _X.,1,NoOp(x; not a comment inside?)
 same => n(label),Playback(digits/1&/abs/path&${VAR},noanswer)
exten => s,hint,PJSIP/agent1001
 same => n,Hangup
[ctx-b](!)
exten => 1,1,Frobnicate(a,b)
"""
    steps = dr.dialplan_steps(text)
    assert [(s.context, s.app) for s in steps] == [
        ("ctx-a", "NoOp"),
        ("ctx-a", "Playback"),
        ("ctx-a", "Hangup"),
        ("ctx-b", "Frobnicate"),
    ]
    assert steps[1].args == "digits/1&/abs/path&${VAR},noanswer"
    sections = dr.conf_sections("[general]\nx = 1\n[user](!) ; tmpl\nread => a,b\nread = c\n")
    assert sections == [("general", (("x", "1"),)), ("user", (("read", "a,b"), ("read", "c")))]

    req = dr.requirements(dataclasses.replace(config, prompts=cm.PromptCatalog()), {"extensions.conf": text})
    assert req.unknown_apps == ("Frobnicate",)
    assert [n.name for n in req.core_sounds] == ["digits/1"]
    assert [n.name for n in req.own_sounds] == ["/abs/path"]


def test_audio_files_and_listed_actions() -> None:
    assert dr.audio_stem("welcome.wav") == "welcome"
    assert dr.audio_stem("1.gsm") == "1"
    assert dr.audio_stem("README.txt") is None
    assert dr.audio_stem("noext") is None
    allowed = dr.allowed_actions(reply("ListCommands.ami.txt"))
    assert allowed is not None
    assert allowed["originate"] == {"originate"}
    assert allowed["mixmonitor"] == {"system"}
    assert allowed["ping"] == frozenset()
    assert "command" not in allowed and "updateconfig" not in allowed
    admin = dr.allowed_actions(reply("admin-ListCommands.ami.txt"))
    assert admin is not None and admin["command"] == {"command"}
    assert dr.may_send(reply("ListCommands.ami.txt"), "ModuleCheck")
    assert not dr.may_send(reply("ListCommands.ami.txt"), "Command")
    assert dr.may_send(dr.Reply(error="whatever"), "Command")  # no list: send and see


# ============================================================================ verdicts on canned replies
def test_verdicts_on_the_real_asterisk_replies(req: dr.Requirements) -> None:
    checks = dr.diagnose(req, facts_from_fixtures(req), all_files(req))
    c = by_name(checks)
    assert [x.name for x in checks] == [
        "AMI",
        "Asterisk version",
        "modules",
        "AMI permissions",
        "phones",
        "trunks",
        "core sounds",
        "center prompts",
        "music on hold",
    ]
    assert c["AMI"].status is dr.Status.OK
    assert c["Asterisk version"].summary == "Asterisk 22.10.1"
    assert c["modules"].status is dr.Status.OK, c["modules"]
    assert c["modules"].summary == f"all {len(req.modules)} modules the config needs are loaded"

    perms = c["AMI permissions"]
    assert perms.status is dr.Status.WARN
    assert any("has write class system" in d and "CVE-2024-42365" in d for d in perms.details)
    assert not any("may not send" in d for d in perms.details)

    phones = c["phones"]
    assert phones.status is dr.Status.FAIL  # super9001 registered but does not answer OPTIONS
    assert phones.summary == "1 of 8 agents' and supervisors' phones registered"
    assert "super9001 (supervisor 9001 (Grace Okafor)): registered but not answering the PBX's OPTIONS" in (
        phones.details
    )
    assert "agent1002 (agent 1002 (Bob Chen)): not registered" in phones.details
    assert not any(d.startswith("agent1001") for d in phones.details)

    trunks = c["trunks"]
    assert trunks.status is dr.Status.FAIL
    assert trunks.summary == "1 of 2 trunks reachable"
    assert trunks.details[0].startswith("carrier: reachable (")
    assert trunks.details[1] == (
        "dialer (trunk to out.carrier.example:5060): unreachable: no answer to OPTIONS at"
        " sip:out.carrier.example:5060"
    )
    for name in ("core sounds", "center prompts", "music on hold"):
        assert c[name].status is dr.Status.OK, c[name]
    assert dr.exit_status(checks) == 1


def test_an_all_good_pbx_exits_0_even_with_warnings(req: dr.Requirements) -> None:
    registered = dr.Reply(
        tuple(
            Message([("Event", "ContactList"), ("Endpoint", p.name), ("Status", "Reachable")])
            for p in req.phones
        )
    )
    endpoints = reply("PJSIPShowEndpoints.ami.txt", listing=True)
    carrier = reply("PJSIPShowEndpoint-carrier.ami.txt", listing=True)
    facts = facts_from_fixtures(
        req, contacts=registered, endpoints=endpoints, trunks={"carrier": carrier, "dialer": carrier}
    )
    checks = dr.diagnose(req, facts, all_files(req))
    assert {c.name: c.status for c in checks if c.status is not dr.Status.OK} == {
        "AMI permissions": dr.Status.WARN
    }
    assert dr.exit_status(checks) == 0
    report = dr.format_report(checks, title="T")
    assert report.splitlines()[-1] == "doctor: 8 ok, 1 warning(s), 0 failed, 0 not checked"


def test_unreachable_pbx_is_one_failed_check_with_the_fix(req: dr.Requirements) -> None:
    facts = dr.PBXFacts("10.0.0.9:5038", "callcenter", link_error="Connection refused")
    checks = dr.diagnose(req, facts, dr.FileFacts(checked=False, where="elsewhere"))
    assert len(checks) == 1
    (check,) = checks
    assert check.status is dr.Status.FAIL
    assert check.summary == "cannot reach the PBX's AMI at 10.0.0.9:5038: Connection refused"
    assert any("is Asterisk running" in f for f in check.fix)
    assert any("manager.conf" in f and "callcenter apply" in f for f in check.fix)
    assert dr.exit_status(checks) == 1

    refused = dr.PBXFacts("10.0.0.9:5038", "callcenter", login_error="Authentication failed")
    (check,) = dr.diagnose(req, refused, dr.FileFacts(checked=False, where="elsewhere"))
    assert check.summary == "the PBX at 10.0.0.9:5038 refused AMI user callcenter: Authentication failed"
    assert any("CALLCENTER_AMI_SECRET" in f for f in check.fix)


def test_wrong_asterisk_version(req: dr.Requirements) -> None:
    for version, status in (
        ("20.5.0", dr.Status.FAIL),
        ("GIT-master-abc", dr.Status.WARN),
        ("22.0.0", dr.Status.OK),
    ):
        settings = changed(reply("CoreSettings.ami.txt"), AsteriskVersion=version)
        check = by_name(dr.diagnose(req, facts_from_fixtures(req, settings=settings), all_files(req)))[
            "Asterisk version"
        ]
        assert check.status is status, (version, check)
    assert "callcenter supports Asterisk 22" in check.summary or status is dr.Status.OK


def test_missing_and_unwanted_modules(req: dr.Requirements) -> None:
    facts = facts_from_fixtures(req)
    modules = dict(facts.modules)
    modules["app_chanspy.so"] = reply("ModuleCheck-not-loaded.ami.txt")
    modules["app_queue.so"] = reply("ModuleCheck-loaded.ami.txt")
    check = by_name(dr.diagnose(req, dataclasses.replace(facts, modules=modules), all_files(req)))["modules"]
    assert check.status is dr.Status.FAIL
    assert check.summary == f"1 of {len(req.modules)} modules the config needs are not loaded"
    assert "not loaded: app_chanspy.so (ChanSpy() in [cc-spy])" in check.details
    assert "loaded although modules.conf says noload: app_queue.so" in check.details
    assert any("module load" in f for f in check.fix)


def test_too_many_and_too_few_permissions(req: dr.Requirements) -> None:
    admin = by_name(
        dr.diagnose(
            req, facts_from_fixtures(req, commands=reply("admin-ListCommands.ami.txt")), all_files(req)
        )
    )["AMI permissions"]
    assert admin.status is dr.Status.FAIL
    assert any(d.startswith("has write class command: runs any Asterisk CLI command") for d in admin.details)
    assert any(d.startswith("has write class config") for d in admin.details)
    assert any("remove command and config" in f for f in admin.fix)

    listing = messages("ListCommands.ami.txt")[0]
    without = Message([(k, v) for k, v in listing.headers if k not in ("Originate", "Atxfer")])
    few = by_name(dr.diagnose(req, facts_from_fixtures(req, commands=dr.Reply((without,))), all_files(req)))[
        "AMI permissions"
    ]
    assert few.status is dr.Status.FAIL
    assert few.summary == "AMI user callcenter may not send 2 action(s) the controller uses"
    assert (
        "may not send Originate (write class originate): needed to ring agents, dial campaigns,"
        " connect supervisors" in few.details
    )
    assert any("add call, originate to the write line" in f for f in few.fix)


def test_what_the_ami_user_may_not_ask_is_not_checked(req: dr.Requirements) -> None:
    facts = facts_from_fixtures(
        req,
        settings=dr.DENIED,
        modules={n.name: dr.DENIED for n in req.modules},
        endpoints=dr.DENIED,
        contacts=dr.DENIED,
        trunks={t.name: dr.DENIED for t in req.trunks},
    )
    c = by_name(dr.diagnose(req, facts, all_files(req)))
    assert c["modules"].status is dr.Status.SKIP
    assert (
        c["modules"].summary
        == "not checked: AMI user callcenter may not send ModuleCheck (write class system)"
    )
    assert c["Asterisk version"].summary.endswith("(write class system or reporting)")
    assert c["phones"].status is dr.Status.SKIP and c["trunks"].status is dr.Status.SKIP
    assert dr.exit_status(c.values()) == 0


def test_a_pbx_that_stops_answering(req: dr.Requirements) -> None:
    facts = facts_from_fixtures(
        req,
        stopped="PJSIPShowEndpoints (ActionID x): no answer within 2 s",
        endpoints=dr.NOT_ASKED,
        contacts=dr.NOT_ASKED,
        trunks={},
    )
    c = by_name(dr.diagnose(req, facts, all_files(req)))
    assert c["AMI"].status is dr.Status.FAIL
    assert "stopped answering: PJSIPShowEndpoints" in c["AMI"].summary
    assert c["phones"].summary == "not checked: the PBX stopped answering"


def test_no_contacts_and_trunks_not_qualified_yet(req: dr.Requirements) -> None:
    none = reply("PJSIPShowContacts-none.ami.txt", listing=True)
    assert none.error == "No Contacts found"
    unreg = by_name(
        dr.diagnose(
            req,
            facts_from_fixtures(
                req,
                contacts=none,
                endpoints=dr.Reply(
                    tuple(
                        Message([("Event", "EndpointList"), ("ObjectName", n), ("Contacts", "")])
                        for n in [p.name for p in req.phones] + ["carrier", "dialer"]
                    )
                ),
                trunks={
                    "carrier": reply("PJSIPShowEndpoint-carrier-not-qualified.ami.txt", listing=True),
                    "dialer": reply("PJSIPShowEndpoint-nosuch.ami.txt", listing=True),
                },
            ),
            all_files(req),
        )
    )
    assert unreg["phones"].status is dr.Status.WARN
    assert unreg["phones"].summary == "0 of 8 agents' and supervisors' phones registered"
    assert any("sip_password" in f for f in unreg["phones"].fix)
    trunks = unreg["trunks"]
    assert trunks.status is dr.Status.FAIL  # the dialer is not configured at all
    assert "carrier (trunk to sip.carrier.example:5060): not qualified yet (NonQualified)" in trunks.details
    assert (
        "dialer (trunk to out.carrier.example:5060): not configured on the PBX"
        " (Unable to retrieve endpoint nosuch)" in trunks.details
    )


def test_missing_sounds_and_music_say_how_to_get_them(req: dr.Requirements) -> None:
    sounds = dr.sounds_dir_of(DATA_DIR)
    core_present = {p for d in range(21) for p in dr.core_sound_paths(f"digits/{d}", sounds)}
    files = dr.FileFacts(
        checked=True,
        where="here",
        sounds=frozenset(core_present) | {n.name for n in req.own_sounds if "/es/" in n.name},
        music={"/var/lib/asterisk/moh/default": 4, "/var/lib/asterisk/moh/calm": 0},
        other_music=("/usr/share/asterisk/moh",),
    )
    c = by_name(dr.diagnose(req, facts_from_fixtures(req), files))
    core = c["core sounds"]
    assert core.status is dr.Status.FAIL
    assert (
        core.summary
        == f"{len(req.core_sounds) - 21} of {len(req.core_sounds)} missing from {sounds} (language en)"
    )
    assert any(
        d.startswith("missing: vm-theperson, vm-isunavail, vm-intro, beep (the voicemail greeting")
        for d in core.details
    )
    assert not any(d.startswith("no Asterisk sound set has") for d in core.details)  # 23 = digits/20&digits/3
    assert any("apt-get install asterisk-core-sounds-en-wav" in f for f in core.fix)
    own = c["center prompts"]
    assert own.status is dr.Status.FAIL
    assert own.summary == "43 of 86 missing under /var/lib/asterisk/sounds/callcenter"
    assert own.details[0].startswith("missing: en/")
    assert any("callcenter apply --install-prompts" in f for f in own.fix)
    music = c["music on hold"]
    assert music.status is dr.Status.FAIL
    assert music.details == (
        "class calm: no audio files in /var/lib/asterisk/moh/calm",
        "class upbeat: no directory /var/lib/asterisk/moh/upbeat",
    )
    assert "asterisk-moh-opsound-wav" in music.fix[0] and "/usr/share/asterisk/moh/*.wav" in music.fix[0]

    # Every sound the center plays is in Asterisk's packages (numbers above 20 are said in parts).
    packaged = dataclasses.replace(
        files, sounds=frozenset(p for n in req.core_sounds for p in dr.core_sound_paths(n.name, sounds))
    )
    complete = by_name(dr.diagnose(req, facts_from_fixtures(req), packaged))["core sounds"]
    assert complete.status is dr.Status.OK, complete

    # Installed, but not where this Asterisk reads them: say where they are.
    elsewhere = dataclasses.replace(files, other_sounds=("/usr/share/asterisk/sounds",))
    fix = by_name(dr.diagnose(req, facts_from_fixtures(req), elsewhere))["core sounds"].fix[0]
    assert fix.startswith(f"they are in /usr/share/asterisk/sounds, but this Asterisk reads {sounds}")
    assert "astdatadir => /usr/share/asterisk" in fix


def test_a_remote_pbx_files_are_not_checked(req: dr.Requirements) -> None:
    files = dr.FileFacts(checked=False, where="the PBX at 10.0.0.9 is another machine")
    c = by_name(dr.diagnose(req, facts_from_fixtures(req), files))
    for name in ("core sounds", "center prompts", "music on hold"):
        assert c[name].status is dr.Status.SKIP
        assert c[name].summary.startswith("not checked: the PBX at 10.0.0.9 is another machine; run")


def test_the_report_format(req: dr.Requirements) -> None:
    checks = [
        dr.Check("a", dr.Status.OK, "fine"),
        dr.Check("b", dr.Status.FAIL, "broken", ("x missing",), ("install x",)),
        dr.Check("c", dr.Status.SKIP, "not checked: why"),
    ]
    assert dr.format_report(checks, title="T") == (
        "T\n"
        "OK    a: fine\n"
        "FAIL  b: broken\n"
        "        x missing\n"
        "      fix: install x\n"
        "SKIP  c: not checked: why\n"
        "doctor: 1 ok, 0 warning(s), 1 failed, 1 not checked\n"
    )


# ============================================================================ the simulator
@pytest.fixture
def rendered(tmp_path: Path, config: cm.Config) -> Path:
    out = tmp_path / "asterisk"
    write_files(render(config), out)
    return out


@pytest.fixture
async def sim(rendered: Path) -> AsyncIterator[SimulatedPBX]:
    pbx = SimulatedPBX(rendered, ami_port=0)
    pbx.ami.write_classes = frozenset(ALL)
    await pbx.start()
    pbx.start_people(
        Scenario(
            "doctor",
            agents=(
                AgentProfile("agent1001"),
                AgentProfile("super9001"),
                AgentProfile("agent1002", registered=False),
            ),
            outbound=OutboundProfile(trunk="dialer"),
        )
    )
    try:
        yield pbx
    finally:
        await pbx.close()


def _names(msg: Message) -> list[str]:
    return [k for k, _ in msg.headers]


async def test_the_simulator_answers_doctor_as_asterisk_22_does(sim: SimulatedPBX) -> None:
    async with AMIClient(
        port=sim.ami_port, username="callcenter", secret="doctor-test", ping_interval=0, event_mask="off"
    ) as ami:
        for action, headers, fixture in (
            ("CoreSettings", {}, "CoreSettings.ami.txt"),
            ("Getvar", {"Variable": "ASTDATADIR"}, "Getvar-ASTDATADIR.ami.txt"),
            ("ModuleCheck", {"Module": "app_chanspy.so"}, "ModuleCheck-loaded.ami.txt"),
        ):
            got = await ami.send_action(action, headers, timeout=5)
            assert _names(got)[2:] == _names(messages(fixture)[0])[2:], action
        assert (await ami.send_action("CoreSettings", timeout=5))["AsteriskVersion"].startswith("22.")
        assert (await ami.send_action("Getvar", {"Variable": "ASTDATADIR"}, timeout=5))[
            "Value"
        ] == sim.ami.data_dir
        for action, headers, fixture in (
            ("ModuleCheck", {"Module": "app_queue"}, "ModuleCheck-not-loaded.ami.txt"),
            ("PJSIPShowEndpoint", {"Endpoint": "nosuch"}, "PJSIPShowEndpoint-nosuch.ami.txt"),
            ("Command", {"Command": "core show version"}, "Command-denied.ami.txt"),
        ):
            with pytest.raises(AMIActionError) as info:
                await ami.send_action(action, headers, timeout=5)
            assert info.value.reason == messages(fixture)[0]["Message"].strip(), action

        listing = await ami.send_action("ListCommands", timeout=5)
        real = messages("ListCommands.ami.txt")[0]
        served = [k for k, _ in listing.headers][2:]
        assert served == sorted(served, key=str.lower)
        assert "Command" not in served and "Originate" in served  # the user's classes apply
        for name in served:
            assert listing[name] == real[name], name  # same synopsis and classes as Asterisk 22

        endpoints = await ami.send_action_list("PJSIPShowEndpoints", timeout=5)
        real_list = messages("PJSIPShowEndpoints.ami.txt")
        assert [_names(e) for e in endpoints[:-1]] == [_names(real_list[1])] * (len(endpoints) - 1)
        assert _names(endpoints[-1]) == _names(real_list[-1])
        state = {e["ObjectName"]: (e["DeviceState"], e["Contacts"]) for e in endpoints[:-1]}
        assert state == {
            "agent1001": ("Not in use", "agent1001/sip:agent1001@127.0.0.1:5060,"),
            "agent1002": ("Unavailable", ""),
            "carrier": ("Not in use", "carrier/sip:127.0.0.1:5060,"),
            "dialer": ("Not in use", "dialer/sip:127.0.0.1:5060,"),
            "super9001": ("Not in use", "super9001/sip:super9001@127.0.0.1:5060,"),
        }

        contacts = await ami.send_action_list("PJSIPShowContacts", timeout=5)
        real_contacts = messages("PJSIPShowContacts.ami.txt")
        assert [_names(c) for c in contacts[:-1]] == [_names(real_contacts[1])] * 2
        assert [c["Endpoint"] for c in contacts[:-1]] == ["agent1001", "super9001"]  # no trunk

        for endpoint, fixture in (
            ("agent1001", "PJSIPShowEndpoint-agent1001.ami.txt"),
            ("carrier", "PJSIPShowEndpoint-carrier.ami.txt"),
        ):
            detail = await ami.send_action_list("PJSIPShowEndpoint", {"Endpoint": endpoint}, timeout=5)
            real_detail = messages(fixture)
            assert set(_names(detail[0])) <= set(_names(real_detail[1])) | {"Aors"}
            (got_status,) = [e for e in detail if e.name == "ContactStatusDetail"]
            (real_status,) = [e for e in real_detail if e.name == "ContactStatusDetail"]
            assert _names(got_status) == _names(real_status), endpoint
            assert got_status["Status"] == "Reachable"
            assert detail[-1]["ListItems"] == str(len(detail) - 1)  # as Asterisk counts
            assert real_detail[-1]["ListItems"] == str(len(real_detail) - 2)

        sim.ami.write_classes = frozenset({"call"})
        with pytest.raises(AMIActionError, match="Permission denied"):
            await ami.send_action("ModuleCheck", {"Module": "app_dial"}, timeout=5)


# ============================================================================ the command
def _center(tmp_path: Path) -> tuple[Path, Path]:
    """dialplans/ and ivr_prompts/ copied, the PBX's sound and music dirs moved under tmp/pbx."""
    center = tmp_path / "center"
    shutil.copytree(REPO / "dialplans", center / "dialplans")
    shutil.copytree(REPO / "ivr_prompts", center / "ivr_prompts")
    pbx = tmp_path / "pbx"
    yaml = center / "dialplans" / "center.yaml"
    text = yaml.read_text()
    text = text.replace(
        "sounds_dir: /var/lib/asterisk/sounds/callcenter", f"sounds_dir: {pbx}/sounds/callcenter"
    )
    text = text.replace("moh_dir: /var/lib/asterisk/moh", f"moh_dir: {pbx}/moh")
    assert text.count(str(pbx)) == 2, "center.yaml's asterisk dirs moved"
    yaml.write_text(text)
    return center, pbx


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 80)


@pytest.fixture
async def center_sim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Path, Path, SimulatedPBX]]:
    monkeypatch.setenv("CC_AMI_SECRET", "doctor-cli")
    center, pbx_dir = _center(tmp_path)
    config = load(center / "dialplans").config
    out = tmp_path / "asterisk"
    write_files(render(config), out)
    pbx = SimulatedPBX(out, ami_port=0)
    pbx.ami.write_classes = frozenset(ALL)
    pbx.ami.data_dir = str(pbx_dir)
    await pbx.start()
    pbx.start_people(
        Scenario(
            "doctor",
            agents=tuple(AgentProfile(a.endpoint) for a in config.agents.values())
            + tuple(AgentProfile(s.endpoint, registered=s.id != "9002") for s in config.supervisors.values()),
            outbound=OutboundProfile(trunk="dialer"),
        )
    )
    # The environment that `callcenter run` reads points the command at the simulator.
    monkeypatch.setenv("CALLCENTER_AMI_PORT", str(pbx.ami_port))
    try:
        yield center, pbx_dir, pbx
    finally:
        await pbx.close()


async def test_doctor_against_the_simulated_pbx(
    center_sim: tuple[Path, Path, SimulatedPBX], capsys: pytest.CaptureFixture[str]
) -> None:
    center, pbx_dir, pbx = center_sim
    args = build_parser().parse_args(
        ["doctor", str(center / "dialplans"), "--files", "check", "--timeout", "5"]
    )

    # Nothing installed yet, app_chanspy missing, supervisor 9002's phone off.
    pbx.ami.modules = pbx.ami.modules - {"app_chanspy"}
    assert await cmd.run(args) == 1
    report = capsys.readouterr().out
    lines = report.splitlines()
    assert (
        lines[0] == "callcenter doctor: the PBX for Northwind Energy Customer Care at"
        f" 127.0.0.1:{pbx.ami_port} (AMI user callcenter)"
    )
    assert (
        f"OK    AMI: logged in to 127.0.0.1:{pbx.ami_port} as callcenter (Asterisk Call Manager/11.0.0)"
        in lines
    )
    assert "OK    Asterisk version: Asterisk 22.10.1" in lines
    assert "        not loaded: app_chanspy.so (ChanSpy() in [cc-spy])" in lines
    assert "WARN  phones: 7 of 8 agents' and supervisors' phones registered" in lines
    assert "        super9002 (supervisor 9002 (Hugo Lindqvist)): not registered" in lines
    assert "OK    trunks: 2 of 2 trunks reachable" in lines
    assert f"FAIL  core sounds: 32 of 32 missing from {pbx_dir}/sounds (language en)" in lines
    assert f"FAIL  center prompts: 86 of 86 missing under {pbx_dir}/sounds/callcenter" in lines
    assert "FAIL  music on hold: 3 of 3 classes would play silence" in lines
    assert any("callcenter apply --install-prompts" in line for line in lines)

    # Install what was missing: the prompts as `apply --install-prompts` does, the core sounds and
    # music as the packages would; load the module; every check passes (the system class warns).
    assert install_prompts(center / "ivr_prompts", pbx_dir / "sounds" / "callcenter") == 86
    for name in ("beep", "vm-intro", "vm-isunavail", "vm-theperson", *(f"digits/{n}" for n in range(100))):
        _wav(pbx_dir / "sounds" / "en" / f"{name}.wav")
    for cls in ("default", "calm", "upbeat"):
        _wav(pbx_dir / "moh" / cls / "music.wav")
    pbx.ami.modules = pbx.ami.modules | {"app_chanspy"}
    assert await cmd.run(args) == 0
    report = capsys.readouterr().out
    assert "FAIL" not in report, report
    assert report.splitlines()[-1] == "doctor: 7 ok, 2 warning(s), 0 failed, 0 not checked"
    assert (
        "WARN  AMI permissions: AMI user callcenter may send every action the controller uses,"
        " and more than it needs" in report
    )

    # The rendered user, without the system class: every action the controller uses, and no
    # more; the module and endpoint checks need system (doctor says how to run them).
    pbx.ami.write_classes = frozenset({"call", "originate", "agent"})
    assert await cmd.run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        "SKIP  modules: not checked: AMI user callcenter may not send ModuleCheck (write class system)"
        in lines
    )
    assert "OK    AMI permissions: AMI user callcenter may send every action the controller uses" in lines
    pbx.ami.write_classes = frozenset({"call", "agent"})
    assert await cmd.run(args) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "FAIL  AMI permissions: AMI user callcenter may not send 1 action(s) the controller uses" in lines


async def test_every_ami_wait_is_bounded(req: dr.Requirements) -> None:
    """A PBX that accepts and then says nothing, or logs in and then answers nothing: doctor
    reports it within its timeouts instead of hanging."""
    logs_in = True

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if logs_in:
            writer.write(b"Asterisk Call Manager/11.0.0\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                data += chunk
            action_id = next(
                (line.split(b": ", 1)[1] for line in data.split(b"\r\n") if line.startswith(b"ActionID")), b""
            )
            writer.write(
                b"Response: Success\r\nActionID: "
                + action_id
                + b"\r\nMessage: Authentication accepted\r\n\r\n"
            )
        await reader.read()  # then nothing more, until the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t = cmd.Target("127.0.0.1", port, "callcenter", "x", connect_timeout=0.3, timeout=0.3)
    try:
        async with asyncio.timeout(10):
            facts = await cmd.ask_pbx(req, t)
            assert facts.link_error is None and facts.login_error is None
            assert facts.stopped is not None and facts.stopped.startswith("ListCommands (ActionID")
            assert facts.stopped.endswith("no answer within 0.3 s")
            assert not facts.settings.asked and not facts.endpoints.asked
            logs_in = False
            facts = await cmd.ask_pbx(req, t)
            assert facts.link_error is not None
    finally:
        server.close()
        await server.wait_closed()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _doctor(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callcenter", "doctor", *argv],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
        env={**os.environ, "CC_AMI_SECRET": "x"},
    )  # fmt: skip


def test_cli_unreachable_pbx_exits_1_with_the_fix() -> None:
    port = _closed_port()
    res = _doctor("dialplans", "--ami", f"127.0.0.1:{port}", "--timeout", "3")
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"FAIL  AMI: cannot reach the PBX's AMI at 127.0.0.1:{port}: Connection refused" in res.stdout
    assert "fix: is Asterisk running" in res.stdout
    assert res.stdout.splitlines()[-1] == "doctor: 0 ok, 0 warning(s), 1 failed, 0 not checked"
    assert "Traceback" not in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["dialplans", "--ami", "nowhere"], "--ami must be HOST:PORT, got 'nowhere'"),
        (["dialplans", "--ami", "127.0.0.1:70000"], "AMI port 70000 is not in 1-65535"),
        (["dialplans", "--timeout", "0"], "--timeout must be in (0, 600] seconds"),
        (["/nonexistent-dir"], "not a directory"),
    ],
)
def test_cli_bad_usage_exits_2_with_a_named_error(argv: list[str], says: str) -> None:
    res = _doctor(*argv)
    assert res.returncode == 2, res.stdout + res.stderr
    assert says in res.stderr
    assert "Traceback" not in res.stdout + res.stderr


# ============================================================================ a real Asterisk 22
REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="a phone: register with digest auth, then stay (answers OPTIONS with -aa)">
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Expires: 300
      Content-Length: 0

    ]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      [authentication]
      Max-Forwards: 70
      Expires: 300
      Content-Length: 0

    ]]></send>
  <recv response="200"/>
  <pause milliseconds="600000"/>
</scenario>
"""


@pytest.mark.asterisk
@pytest.mark.timeout(120)
async def test_doctor_on_a_real_asterisk(capsys: pytest.CaptureFixture[str]) -> None:
    """The example center on a real Asterisk 22 as the harness starts it (its sounds dir empty
    unless the build has sounds): a SIPp phone registered as agent1001 when SIPp is installed."""
    binary = require_asterisk()
    sipp = shutil.which("sipp")
    with short_tempdir() as root:
        ami_port = free_port()
        secret = "doctor-real"
        config = example_center(root, ami_port=ami_port, agi_port=free_port(), ami_secret=secret)
        # The carrier identified by an address of its own, so a phone on 127.0.0.1 is not taken for it.
        trunks = dict(config.trunks)
        trunks["carrier"] = dataclasses.replace(trunks["carrier"], match=("127.0.0.2",))
        config = dataclasses.replace(config, trunks=cm.frozen_map(trunks))
        music_dirs(config)
        files = rendered_files(config)
        with running_asterisk(files, binary=binary, root=root, ami_port=ami_port) as ast:
            phone: asyncio.subprocess.Process | None = None
            try:
                if sipp is not None:
                    phone = await _register_phone(ast, sipp, root)
                # As the controller's own user (write call,originate,agent): its rights are
                # exactly enough; what needs system (modules, endpoints, version) is not checked.
                own = cmd.Target(
                    "127.0.0.1", ami_port, "callcenter", secret, connect_timeout=5.0, timeout=10.0
                )
                least = by_name(await cmd.examine(config, files, own))
                # As an administrator's AMI user (``--ami-user``): everything else.
                t = cmd.Target(
                    "127.0.0.1", ami_port, ADMIN_USER, ast.admin_secret, connect_timeout=5.0, timeout=10.0
                )
                checks = await cmd.examine(config, files, t)
            finally:
                if phone is not None:
                    await _stop(phone)
    assert least["AMI permissions"].status is dr.Status.OK, least["AMI permissions"]
    assert least["AMI permissions"].summary == "AMI user callcenter may send every action the controller uses"
    for name in ("Asterisk version", "modules", "phones", "trunks"):
        assert least[name].status is dr.Status.SKIP, least[name]
        assert least[name].summary.startswith("not checked: AMI user callcenter may not send"), least[name]
    report = dr.format_report(checks, title=cmd.title(config, t))
    with capsys.disabled():
        sys.stdout.write("\n" + report)
    c = by_name(checks)
    assert c["AMI"].status is dr.Status.OK
    assert c["Asterisk version"].status is dr.Status.OK and c["Asterisk version"].summary.startswith(
        "Asterisk 22."
    )
    assert c["modules"].status is dr.Status.OK, c["modules"]
    assert c["AMI permissions"].status is dr.Status.FAIL  # the test's admin: command and config
    assert any("has write class system" in d for d in c["AMI permissions"].details)
    registered = 1 if sipp is not None else 0
    assert c["phones"].summary == f"{registered} of 8 agents' and supervisors' phones registered"
    assert c["phones"].status is dr.Status.WARN
    assert not any(d.startswith("agent1001") for d in c["phones"].details) or sipp is None
    assert c["trunks"].summary == "0 of 2 trunks reachable"  # the example carriers do not exist here
    core = c["core sounds"]  # the harness gives Asterisk a data dir whose sounds hold the core set
    assert core.status is dr.Status.OK, core
    assert c["center prompts"].status is dr.Status.OK
    assert c["music on hold"].status is dr.Status.OK
    assert dr.exit_status(checks) == 1  # the admin user's command and config classes


async def _register_phone(ast: RealAsterisk, sipp: str, root: Path) -> asyncio.subprocess.Process:
    """SIPp as agent1001's phone (digest auth, answering OPTIONS), once Asterisk says it is
    reachable (the ``ContactStatus`` event)."""
    scenario = root / "register.xml"
    scenario.write_text(REGISTER_XML)
    async with AMIClient(
        port=ast.ami_port, username=ADMIN_USER, secret=ast.admin_secret, ping_interval=0
    ) as ami:
        events = ami.events({"ContactStatus"})
        phone = await asyncio.create_subprocess_exec(
            sipp, f"127.0.0.1:{ast.sip_port}", "-sf", str(scenario), "-s", "agent1001", "-au", "agent1001",
            "-ap", "from-env-1001", "-i", "127.0.0.1", "-p", str(free_port()), "-aa", "-m", "1", "-nostdin",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root,
        )  # fmt: skip
        try:
            async with asyncio.timeout(20):
                async for event in events:
                    if (
                        isinstance(event, Message)
                        and event.get("EndpointName") == "agent1001"
                        and event.get("ContactStatus") == "Reachable"
                    ):
                        break
        except BaseException:
            await _stop(phone)
            raise
        finally:
            await events.aclose()
    return phone


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    try:
        async with asyncio.timeout(10):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
