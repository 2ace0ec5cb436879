"""Rendering Asterisk's configuration: golden files, parse-back with pyst2, asterisklint, file
modes, atomic writes with a backup, and apply's rollback."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from asterisk.config import Config as AstConfig

from callcenter.asterisk import names
from callcenter.config import model as m
from callcenter.config.load import load_config
from callcenter.config.render import (
    RELOAD_MODULES,
    AMIReloader,
    ApplyError,
    RenderedFile,
    apply,
    install_prompts,
    open_hours_specs,
    render,
    restore_previous,
    write_files,
)
from callcenter.errors import ConfigError, UnsafeValueError
from tests.centers import REPO, TextConfig
from tests.fakes import FakeAMI, FakeReloader

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
EXPECTED_FILES = [
    "amd.conf",
    "asterisk.conf",
    "extensions.conf",
    "features.conf",
    "indications.conf",
    "logger.conf",
    "manager.conf",
    "modules.conf",
    "musiconhold.conf",
    "pjsip.conf",
    "rtp.conf",
    "voicemail.conf",
]

# asterisklint 0.4 predates app_amd and app_waitforsilence: teach it both (any arguments) and run
# its dialplan-check.
ALINT_DRIVER = """\
import os, sys
from asterisklint.app.base import AppBase
from asterisklint.application import AppLoader

class AMD(AppBase):
    pass

class WaitForSilence(AppBase):
    pass

AppLoader().register(AMD())
AppLoader().register(WaitForSilence())
from asterisklint.main import main
sys.exit(main(["dialplan-check", sys.argv[1]], dict(os.environ)))
"""


@pytest.fixture(scope="module")
def example() -> m.Config:
    return load_config(REPO / "dialplans", env={})


@pytest.fixture(scope="module")
def rendered(example: m.Config) -> dict[str, RenderedFile]:
    return {f.name: f for f in render(example)}


def _parse(tmp_path: Path, f: RenderedFile) -> AstConfig:
    return TextConfig(f.text)


def _items(cfg: AstConfig, category: str) -> list[tuple[str, str]]:
    return [(i.name, i.value.strip()) for c in cfg.categories if c.name == category for i in c.items]


# ------------------------------------------------------------------------------ golden
@pytest.mark.parametrize("name", EXPECTED_FILES)
def test_golden(rendered: dict[str, RenderedFile], name: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered[name].text)
    assert rendered[name].text == golden.read_text(), (
        f"re-run with UPDATE_GOLDEN=1 if {name} changed on purpose"
    )


def test_the_file_set_and_which_hold_secrets(rendered: dict[str, RenderedFile]) -> None:
    assert sorted(rendered) == EXPECTED_FILES
    assert {n for n, f in rendered.items() if f.secret} == {"manager.conf", "pjsip.conf", "voicemail.conf"}


def test_deterministic(example: m.Config, rendered: dict[str, RenderedFile]) -> None:
    again = {f.name: f.text for f in render(load_config(REPO / "dialplans", env={}))}
    assert again == {n: f.text for n, f in rendered.items()}


# ------------------------------------------------------------------------------ parse back
def test_every_file_parses_back_with_pyst2(tmp_path: Path, rendered: dict[str, RenderedFile]) -> None:
    for f in rendered.values():
        assert _parse(tmp_path, f).categories, f.name


def test_dialplan_contexts_and_dids(
    tmp_path: Path, rendered: dict[str, RenderedFile], example: m.Config
) -> None:
    cfg = _parse(tmp_path, rendered["extensions.conf"])
    contexts = {c.name for c in cfg.categories}
    required = {value for key, value in vars(names).items() if key.startswith("CTX_")}
    assert required <= contexts
    inbound = [v for k, v in _items(cfg, names.CTX_INBOUND) if k == "exten"]
    for num in example.numbers:
        assert f"{num.dialed},1,NoOp(DID {num.dialed} flow {num.flow})" in inbound
        assert f"+{num.dialed},1,Goto({names.CTX_INBOUND},{num.dialed},1)" in inbound
    text = rendered["extensions.conf"].text
    agi = f"AGI(agi://{example.asterisk.agi.host}:{example.asterisk.agi.port}/{names.AGI_IVR})"
    assert text.count(agi) == len(example.numbers)
    assert f'GotoIf($["${{{names.VAR_AGISTATUS}}}" = "FAILURE"]?{names.CTX_FALLBACK},s,1)' in text
    agent_leg = _items(cfg, names.CTX_AGENT_LEG)
    assert ("same", f"n(bridge),Bridge(${{{names.VAR_CALLER_CHANNEL}}},T)") in agent_leg
    # AMI Atxfer types its Exten as DTMF: one digit, the only extension of its context
    assert _items(cfg, names.CTX_ATXFER) == [
        ("exten", f"{names.ATXFER_EXTEN},1,Goto({names.CTX_TRANSFER},s,1)")
    ]
    spy = _items(cfg, names.CTX_SPY)
    assert ("same", f"n,ChanSpy(${{{names.VAR_SPY_TARGET}}},${{{names.VAR_SPY_OPTIONS}}})") in spy
    hold = _items(cfg, names.CTX_HOLD)
    assert ("same", f"n,MusicOnHold(${{{names.VAR_MOH_CLASS}}})") in hold


def test_fallback_rings_every_agent_then_voicemail(tmp_path: Path, rendered: dict[str, RenderedFile]) -> None:
    fallback = [v for _, v in _items(_parse(tmp_path, rendered["extensions.conf"]), names.CTX_FALLBACK)]
    ring = "&".join(f"PJSIP/agent100{i}" for i in range(1, 7))
    assert fallback == [
        f"s,1,NoOp(controller unreachable AGISTATUS=${{{names.VAR_AGISTATUS}}})",
        "n,Answer()",
        "n,Playback(/var/lib/asterisk/sounds/callcenter/en/fallback-message)",
        f"n,Dial({ring},30)",
        "n,VoiceMail(8000@callcenter,u)",
        "n,Hangup()",
    ]


def test_fallback_with_closed_prompt_checks_the_weekly_hours(tmp_path: Path, example: m.Config) -> None:
    assert example.fallback is not None
    closing = dataclasses.replace(example.fallback, closed_prompt="fallback-closed")
    text = {f.name: f for f in render(dataclasses.replace(example, fallback=closing))}["extensions.conf"]
    fallback = [v for _, v in _items(_parse(tmp_path, text), names.CTX_FALLBACK)]
    ring = "&".join(f"PJSIP/agent100{i}" for i in range(1, 7))
    assert fallback == [
        f"s,1,NoOp(controller unreachable AGISTATUS=${{{names.VAR_AGISTATUS}}})",
        "n,Answer()",
        "n,GotoIfTime(08:00-19:59,mon-fri,*,*,America/New_York?open)",
        "n,GotoIfTime(09:00-12:59,sat,*,*,America/New_York?open)",
        "n,Playback(/var/lib/asterisk/sounds/callcenter/en/fallback-closed)",  # closed: no ringing
        "n,VoiceMail(8000@callcenter,u)",
        "n,Hangup()",
        "n(open),Playback(/var/lib/asterisk/sounds/callcenter/en/fallback-message)",
        f"n,Dial({ring},30)",
        "n,VoiceMail(8000@callcenter,u)",
        "n,Hangup()",
    ]


def test_open_hours_as_gotoiftime_specs() -> None:
    t = dt.time
    center = m.Center(
        name="C",
        timezone="Europe/Paris",
        hours=m.frozen_map(
            {
                0: (m.TimeRange(t(8), t(12)), m.TimeRange(t(13), t(18))),
                1: (m.TimeRange(t(8), t(12)), m.TimeRange(t(13), t(18))),
                2: (m.TimeRange(t(8), t(12)), m.TimeRange(t(13), t(18))),
                4: (m.TimeRange(t(0), t(0)),),
                5: (m.TimeRange(t(22, 30), t(0)),),
                6: (m.TimeRange(t(22, 30), t(0)),),
            }
        ),
    )
    assert open_hours_specs(center) == [
        "08:00-11:59,mon-wed,*,*,Europe/Paris",
        "13:00-17:59,mon-wed,*,*,Europe/Paris",
        "00:00-23:59,fri,*,*,Europe/Paris",
        "22:30-23:59,sat-sun,*,*,Europe/Paris",
    ]


def test_feature_codes_reach_the_controller(tmp_path: Path, rendered: dict[str, RenderedFile]) -> None:
    exts = [
        v
        for k, v in _items(_parse(tmp_path, rendered["extensions.conf"]), names.CTX_FEATURES)
        if k == "exten"
    ]
    # answered first: a prompt on an unanswered channel reaches no phone, and no DTMF comes back
    for code in ("*11", "_*13.", "_*81.", "_*80."):
        assert f"{code},1,Answer()" in exts
    text = rendered["extensions.conf"].text
    assert "*11,1,Answer()\n same => n,AGI(agi://127.0.0.1:4573/feature,agent_login)\n" in text
    assert "_*13.,1,Answer()\n same => n,AGI(agi://127.0.0.1:4573/feature,agent_pause)\n" in text
    assert "_*81.,1,Answer()\n same => n,AGI(agi://127.0.0.1:4573/spy,listen)\n" in text
    assert "_*80.,1,Answer()\n same => n,AGI(agi://127.0.0.1:4573/spy,ask)\n" in text


def test_manager_user_is_least_privilege_on_loopback(
    tmp_path: Path, rendered: dict[str, RenderedFile]
) -> None:
    cfg = _parse(tmp_path, rendered["manager.conf"])
    general = dict(_items(cfg, "general"))
    assert general["bindaddr"] == "127.0.0.1" and general["webenabled"] == "no"
    user = _items(cfg, "callcenter")
    assert ("secret", "change-me-ami") in user
    assert ("deny", "0.0.0.0/0.0.0.0") in user and ("permit", "127.0.0.1/255.255.255.255") in user
    read = dict(user)["read"].split(",")
    write = dict(user)["write"].split(",")
    assert "command" not in write and "config" not in write and "all" not in read + write
    assert {"dialplan", "agi", "reporting"}.isdisjoint(read)  # Newexten, VarSet, AGIExec*, RTCP* stay off


def test_pjsip_has_every_phone_and_trunk(
    tmp_path: Path, rendered: dict[str, RenderedFile], example: m.Config
) -> None:
    cfg = _parse(tmp_path, rendered["pjsip.conf"])
    cats = [c.name for c in cfg.categories]
    for ag in example.agents.values():
        assert cats.count(ag.endpoint) == 2  # endpoint + aor
        assert f"{ag.endpoint}-auth" in cats
    for sv in example.supervisors.values():
        assert cats.count(sv.endpoint) == 2
    assert "carrier-identify" in cats and "dialer-reg" in cats
    assert ("password", "nw-1001-phone") in _items(cfg, "agent1001-auth")
    endpoint = [c for c in cfg.categories if c.name == "agent1001"][0]
    assert ("context", names.CTX_AGENT_PHONES) in [(i.name, i.value.strip()) for i in endpoint.items]


def test_voicemail_and_moh(tmp_path: Path, rendered: dict[str, RenderedFile]) -> None:
    vm = _items(_parse(tmp_path, rendered["voicemail.conf"]), "callcenter")
    assert vm[0] == ("8000", ",General messages,care@northwind.example")
    moh = _parse(tmp_path, rendered["musiconhold.conf"])
    assert [c.name for c in moh.categories] == ["general", "default", "calm", "upbeat"]
    assert ("directory", "/var/lib/asterisk/moh/calm") in _items(moh, "calm")


def test_dialplan_passes_asterisklint(tmp_path: Path, rendered: dict[str, RenderedFile]) -> None:
    (tmp_path / "extensions.conf").write_text(rendered["extensions.conf"].text)
    driver = tmp_path / "alint.py"
    driver.write_text(ALINT_DRIVER)
    env = {k: v for k, v in os.environ.items() if k != "ALINT_IGNORE"}
    result = subprocess.run(
        [sys.executable, str(driver), str(tmp_path / "extensions.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    # and it does catch a real mistake
    (tmp_path / "extensions.conf").write_text(rendered["extensions.conf"].text + "exten => 1,1,Bogus(x)\n")
    bad = subprocess.run(
        [sys.executable, str(driver), str(tmp_path / "extensions.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert bad.returncode == 1 and "E_APP_MISSING" in bad.stdout + bad.stderr


# ------------------------------------------------------------------------------ strictness
def test_undefined_template_variable_is_an_error(tmp_path: Path, example: m.Config) -> None:
    (tmp_path / "x.conf.j2").write_text("[general]\nvalue = {{ no_such_thing }}\n")
    with pytest.raises(ConfigError, match="undefined") as info:
        render(example, templates=tmp_path)
    assert info.value.file == "x.conf.j2"


def test_template_syntax_error_is_located(tmp_path: Path, example: m.Config) -> None:
    (tmp_path / "x.conf.j2").write_text("[general]\n\n{% for %}\n")
    with pytest.raises(ConfigError) as info:
        render(example, templates=tmp_path)
    assert (info.value.file, info.value.line) == ("x.conf.j2", 3)


def test_a_line_break_in_a_value_is_refused(example: m.Config) -> None:
    agent = dataclasses.replace(example.agents["1001"], name="Alice\r\nAction: Hangup")
    bad = dataclasses.replace(example, agents=m.frozen_map({**example.agents, "1001": agent}))
    with pytest.raises(UnsafeValueError):
        render(bad)


def test_printing_none_is_refused(tmp_path: Path, example: m.Config) -> None:
    (tmp_path / "x.conf.j2").write_text("[general]\nvalue = {{ cc.fallback.mailbox if false else none }}\n")
    with pytest.raises(UnsafeValueError):
        render(example, templates=tmp_path)


# ------------------------------------------------------------------------------ writing
def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_write_files_modes_backup_and_restore(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    first = [RenderedFile("a.conf", "one\n"), RenderedFile("s.conf", "secret=1\n", secret=True)]
    write_files(first, out)
    assert (out / "a.conf").read_text() == "one\n"
    assert _mode(out / "a.conf") == 0o644 and _mode(out / "s.conf") == 0o600
    second = [RenderedFile("a.conf", "two\n"), RenderedFile("s.conf", "secret=2\n", secret=True)]
    second.append(RenderedFile("new.conf", "x\n"))
    backup = write_files(second, out)
    assert (backup / "a.conf").read_text() == "one\n" and (backup / "s.conf").read_text() == "secret=1\n"
    assert _mode(backup / "s.conf") == 0o600
    assert not (backup / "new.conf").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        ".previous",
        "a.conf",
        "new.conf",
        "s.conf",
    ]  # no temp files
    assert sorted(restore_previous(out)) == ["a.conf", "new.conf", "s.conf"]
    assert (out / "a.conf").read_text() == "one\n" and (out / "s.conf").read_text() == "secret=1\n"
    assert _mode(out / "s.conf") == 0o600
    assert not (out / "new.conf").exists()


def test_restore_without_backup_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no complete backup"):
        restore_previous(tmp_path)


# ------------------------------------------------------------------------------ apply
async def test_apply_writes_and_reloads(tmp_path: Path, example: m.Config) -> None:
    reloader = FakeReloader()
    result = await apply(example, tmp_path / "etc", reloader)
    assert reloader.calls == list(RELOAD_MODULES)
    assert result.reloaded == RELOAD_MODULES
    assert sorted(result.files) == EXPECTED_FILES
    assert _mode(tmp_path / "etc" / "pjsip.conf") == 0o600


async def test_apply_rolls_back_when_a_reload_fails(tmp_path: Path, example: m.Config) -> None:
    out = tmp_path / "etc"
    out.mkdir()
    (out / "extensions.conf").write_text("; the old dialplan\n")
    reloader = FakeReloader(fail_on="pbx_config.so")
    with pytest.raises(ApplyError) as info:
        await apply(example, out, reloader)
    assert info.value.restored
    assert "reloading pbx_config.so failed: Reload failed: Module reload failed" in str(info.value)
    assert (out / "extensions.conf").read_text() == "; the old dialplan\n"
    assert not (out / "pjsip.conf").exists()  # did not exist before: removed again
    i = RELOAD_MODULES.index("pbx_config.so")
    assert reloader.calls == [*RELOAD_MODULES[: i + 1], *RELOAD_MODULES]  # the old set reloaded


async def test_apply_reports_a_failed_rollback_reload(tmp_path: Path, example: m.Config) -> None:
    reloader = FakeReloader(fail_on="res_pjsip.so", fail_times=2)
    with pytest.raises(ApplyError) as info:
        await apply(example, tmp_path / "etc", reloader)
    assert info.value.restored
    assert "reloading the previous configuration also failed" in str(info.value)


async def test_apply_writes_nothing_when_rendering_fails(tmp_path: Path, example: m.Config) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.conf.j2").write_text("{{ nope }}")
    reloader = FakeReloader()
    with pytest.raises(ConfigError):
        await apply(example, tmp_path / "etc", reloader, templates=tmp_path / "t")
    assert not (tmp_path / "etc").exists() and reloader.calls == []


async def test_ami_reloader_sends_reload_actions() -> None:

    ami = FakeAMI()
    await AMIReloader(ami, timeout=3)("pbx_config.so")
    assert ami.history() == [(names.ACTION_RELOAD, {"Module": "pbx_config.so"})] and ami.timeouts == [3]


def test_install_prompts_copies_changed_wavs_only(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    first = install_prompts(REPO / "ivr_prompts", sounds)
    wavs = sorted((REPO / "ivr_prompts").glob("*/*.wav"))
    assert first == len(wavs) > 0
    assert (sounds / "en" / "welcome.wav").read_bytes() == (
        REPO / "ivr_prompts" / "en" / "welcome.wav"
    ).read_bytes()
    assert install_prompts(REPO / "ivr_prompts", sounds) == 0
    (sounds / "es" / "welcome.wav").write_bytes(b"old")
    assert install_prompts(REPO / "ivr_prompts", sounds) == 1
