"""Phones and carriers: DTMF mode, RTP and session timeouts in YAML and pjsip.conf, identification
(trunks by their own addresses, phones by user name), and the trunk addresses that would take a
phone for a carrier."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from asterisk.config import Config as AstConfig

from callcenter.config import model as m
from callcenter.config.load import load, load_config
from callcenter.config.render import render
from tests.centers import BASE, TextConfig, problems, write

REPO = Path(__file__).resolve().parents[2]


def loaded(tmp_path: Path, extra: str) -> m.Config:
    return load(write(tmp_path, extra), prompts_dir=None, env={}).config


def sections(config: m.Config) -> dict[tuple[str, str], dict[str, list[str]]]:
    """pjsip.conf parsed back: (section name, type) -> key -> values."""
    text = next(f.text for f in render(config) if f.name == "pjsip.conf")
    cfg: AstConfig = TextConfig(text)
    out: dict[tuple[str, str], dict[str, list[str]]] = {}
    for c in cfg.categories:
        items: dict[str, list[str]] = {}
        for i in c.items:
            items.setdefault(i.name, []).append(i.value.strip())
        out[(c.name, items.get("type", [""])[0])] = items
    return out


# ------------------------------------------------------------------------------ the example
def test_the_example_identifies_carriers_by_address_and_phones_by_user_name() -> None:
    c = load_config(REPO / "dialplans", env={})
    assert c.trunks["carrier"].match == ("203.0.113.0/24",)  # a documentation range, not loopback
    pj = sections(c)
    assert pj[("global", "global")]["endpoint_identifier_order"] == ["ip,username"]
    for t in c.trunks.values():
        assert pj[(t.id, "endpoint")]["identify_by"] == ["ip"]
    for ep in [a.endpoint for a in c.agents.values()] + [s.endpoint for s in c.supervisors.values()]:
        endpoint = pj[(ep, "endpoint")]
        assert endpoint["identify_by"] == ["username"]
        assert endpoint["auth"] == [f"{ep}-auth"]  # digest auth on every phone
        assert pj[(f"{ep}-auth", "auth")]["username"] == [ep]
    assert pj[("carrier-identify", "identify")]["match"] == ["203.0.113.0/24"]


def test_the_example_renders_dtmf_rtp_timeouts_and_session_timers_on_every_endpoint() -> None:
    c = load_config(REPO / "dialplans", env={})
    assert c.phones == m.SipMedia()
    pj = sections(c)
    endpoints = [k for k in pj if k[1] == "endpoint"]
    assert len(endpoints) == len(c.trunks) + len(c.agents) + len(c.supervisors)
    for key in endpoints:
        e = pj[key]
        assert e["dtmf_mode"] == ["rfc4733"]
        assert (e["rtp_timeout"], e["rtp_timeout_hold"]) == (["30"], ["300"])
        assert (e["timers"], e["timers_sess_expires"], e["timers_min_se"]) == (["yes"], ["1800"], ["90"])


# ------------------------------------------------------------------------------ settings
def test_phones_trunks_and_one_agent_set_their_own(tmp_path: Path) -> None:
    c = loaded(
        tmp_path,
        """\
        phones: {dtmf_mode: info, rtp_timeout: 60, rtp_timeout_hold: 0, timers: no}
        trunks:
          t1:
            host: sip.example.net
            match: [198.51.100.7]
            dtmf_mode: auto
            rtp_timeout: 0
            timers: always
            timers_sess_expires: 600
            timers_min_se: 120
        supervisors:
          - {id: "9", name: Sue, endpoint: s9, pin: "1234", sip_password: p, queues: [sales],
             dtmf_mode: inband}
        """,
    )
    assert c.phones == m.SipMedia(
        dtmf_mode=m.DtmfMode.INFO, rtp_timeout=60, rtp_timeout_hold=0, timers=m.SessionTimers.NO
    )
    assert c.trunks["t1"].media == m.SipMedia(
        dtmf_mode=m.DtmfMode.AUTO,
        rtp_timeout=0,
        timers=m.SessionTimers.ALWAYS,
        timers_sess_expires=600,
        timers_min_se=120,
    )
    assert c.supervisors["9"].dtmf_mode is m.DtmfMode.INBAND and c.agents["1001"].dtmf_mode is None
    pj = sections(c)
    assert pj[("t1", "endpoint")]["dtmf_mode"] == ["auto"] and pj[("t1", "endpoint")]["rtp_timeout"] == ["0"]
    assert pj[("t1", "endpoint")]["timers"] == ["always"]
    assert pj[("a1", "endpoint")]["dtmf_mode"] == ["info"]  # the phones' default
    assert pj[("a1", "endpoint")]["rtp_timeout"] == ["60"] and pj[("a1", "endpoint")]["timers"] == ["no"]
    assert pj[("s9", "endpoint")]["dtmf_mode"] == ["inband"]  # its own
    assert pj[("s9", "endpoint")]["rtp_timeout_hold"] == ["0"]


def test_timers_accept_true_and_false(tmp_path: Path) -> None:
    c = loaded(tmp_path, "phones: {timers: false}\n")
    assert c.phones.timers is m.SessionTimers.NO
    c = loaded(tmp_path, "phones: {timers: true}\n")
    assert c.phones.timers is m.SessionTimers.YES


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            "phones: {dtmf_mode: rfc2833}\n",
            "extra.yaml:1: phones.dtmf_mode: expected one of rfc4733, info, inband, auto, auto_info, "
            "found 'rfc2833'",
            id="dtmf-mode-unknown",
        ),
        pytest.param(
            'agents:\n  - {id: "1002", name: Bo, endpoint: a2, extension: "202", pin: "1234",\n'
            "     sip_password: p, dtmf_mode: sip}\n",
            "extra.yaml:3: agents.1002.dtmf_mode: expected one of rfc4733, info, inband, auto, auto_info, "
            "found 'sip'",
            id="agent-dtmf-mode-unknown",
        ),
        pytest.param(
            "phones: {rtp_timeout: 2}\n",
            "extra.yaml:1: phones.rtp_timeout: rtp_timeout 2 s would end calls over a short network "
            "hiccup (expected 0 to turn it off, or 5 s and more)",
            id="rtp-timeout-too-short",
        ),
        pytest.param(
            "phones: {rtp_timeout: -1}\n",
            "extra.yaml:1: phones.rtp_timeout: expected a whole number 0..3600, found -1",
            id="rtp-timeout-negative",
        ),
        pytest.param(
            "phones: {timers_sess_expires: 100, timers_min_se: 200}\n",
            "extra.yaml:1: phones.timers_min_se: timers_sess_expires (100) is below timers_min_se (200): "
            "a session could never be refreshed in time",
            id="session-expires-below-min-se",
        ),
        pytest.param(
            "phones: {timers_min_se: 30}\n",
            "extra.yaml:1: phones.timers_min_se: expected a whole number 90..86400, found 30",
            id="min-se-below-rfc4028",
        ),
        pytest.param(
            "phones: {timers: maybe}\n",
            "extra.yaml:1: phones.timers: expected one of no, yes, required, always, found 'maybe'",
            id="timers-unknown",
        ),
        pytest.param(
            "phones: {dtmf: info}\n",
            "extra.yaml:1: phones.dtmf: unknown key 'dtmf'; expected one of dtmf_mode, rtp_timeout, "
            "rtp_timeout_hold, timers, timers_min_se, timers_sess_expires",
            id="phones-unknown-key",
        ),
        pytest.param(
            "trunks:\n  t1: {host: sip.example.net, match: [203.0.113.300]}\n",
            "extra.yaml:2: trunks.t1.match.0: expected an IP address or network (CIDR), "
            "found '203.0.113.300'",
            id="match-not-an-address",
        ),
        pytest.param(
            "trunks:\n  t1: {host: sip.example.net, match: [198.51.100.0/24], codecs: [g729],\n"
            "       dtmf_mode: inband}\n",
            "extra.yaml:3: trunks.t1.dtmf_mode: dtmf_mode inband needs an uncompressed codec (ulaw or alaw) "
            "to carry tones, found g729",
            id="inband-with-a-compressed-codec",
        ),
    ],
)
def test_media_rules(tmp_path: Path, extra: str, expected: str) -> None:
    assert problems(tmp_path, extra) == [expected]


# ------------------------------------------------------------------------------ addresses
@pytest.mark.parametrize(
    ("match", "what"),
    [
        ("127.0.0.1", "covers this PBX's own host (127.0.0.0/8)"),
        ("127.0.0.2", "covers this PBX's own host (127.0.0.0/8)"),
        ("::1", "covers this PBX's own host (::1/128)"),
        ("0.0.0.0/0", "is every address"),
        ("10.1.2.3", "covers this PBX's own host (10.1.2.3/32)"),
        ("10.1.0.0/16", "covers this PBX's own host (10.1.2.3/32)"),
    ],
)
def test_a_trunk_matching_the_pbx_host_or_everything_is_refused(
    tmp_path: Path, match: str, what: str
) -> None:
    base = BASE + "asterisk:\n  ami: {host: 10.1.2.3, secret: s}\n"
    got = problems(tmp_path, f'trunks:\n  t1: {{host: sip.example.net, match: ["{match}"]}}\n', base=base)
    assert len(got) == 1, got
    assert got[0].startswith(f"extra.yaml:2: trunks.t1.match.0: match {match} ") and what in got[0], got


def test_overlapping_trunks_and_a_trunk_named_like_a_phone_are_refused(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        trunks:
          t1: {host: a.example.net, match: [198.51.100.0/24]}
          t2: {host: b.example.net, match: [198.51.100.9]}
          a1: {host: c.example.net, match: [192.0.2.1]}
        """,
    )
    assert got == [
        "extra.yaml:3: trunks.t2.match.0: match 198.51.100.9 overlaps trunk 't1''s 198.51.100.0/24",
        "extra.yaml:4: trunks.a1: trunk 'a1' and agent 1001's endpoint 'a1' would share a PJSIP section name",
    ]


def test_a_test_may_still_put_its_carrier_on_a_loopback_address() -> None:
    """The refusal is the loader's: a test sets its own loopback carrier on the loaded model."""
    c = load_config(REPO / "dialplans", env={})
    carrier = dataclasses.replace(c.trunks["carrier"], match=("127.0.0.2",))
    c = dataclasses.replace(c, trunks=m.frozen_map({**c.trunks, "carrier": carrier}))
    assert sections(c)[("carrier-identify", "identify")]["match"] == ["127.0.0.2"]


# ------------------------------------------------------------------------------ answering
# Applications that play to the person on the channel, listen to its DTMF, or hand it to the
# controller (whose routes prompt and read digits).
TALKING_APPS = ("AGI", "Playback", "Background", "Read", "VoiceMail", "ChanSpy", "AMD", "MusicOnHold")
# Contexts a call enters before anything answered it: DIDs, phones dialling (features, extensions),
# the static fallback, voicemail, monitoring, and the dialer's legs.
FIRST_CONTEXTS = (
    "cc-inbound",
    "cc-fallback",
    "cc-features",
    "cc-agents",
    "cc-spy",
    "cc-outbound",
    "cc-voicemail",
)


def extensions_by_context(text: str) -> dict[str, list[list[str]]]:
    """Each context's extensions, each as its applications in priority order (labels dropped)."""
    out: dict[str, list[list[str]]] = {}
    context = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            context = line[1:-1]
            out[context] = []
        elif line.startswith("exten =>"):
            app = line.split(",", 2)[2]
            out[context].append([app])
        elif line.startswith("same =>"):
            app = line.split(",", 1)[1]
            out[context][-1].append(app)
    return out


def unanswered(text: str) -> tuple[int, list[tuple[str, list[str]]]]:
    """(extensions checked, those of ``FIRST_CONTEXTS`` that talk or listen before Answer())."""
    checked, bad = 0, []
    contexts = extensions_by_context(text)
    for context in FIRST_CONTEXTS:
        for apps in contexts[context]:
            first_talk = next((i for i, a in enumerate(apps) if a.split("(", 1)[0] in TALKING_APPS), None)
            if first_talk is None:
                continue
            checked += 1
            if "Answer()" not in apps[:first_talk]:
                bad.append((context, apps))
    return checked, bad


def test_every_context_a_call_enters_answers_before_it_talks_or_listens() -> None:
    """A phone hears nothing and can send no DTMF on an unanswered channel: every extension of
    the contexts a call enters first runs Answer() before any prompt, DTMF read or AGI (the
    controller's routes answer too, but the dialplan must not rely on it)."""
    c = load_config(REPO / "dialplans", env={})
    text = next(f.text for f in render(c) if f.name == "extensions.conf")
    checked, bad = unanswered(text)
    assert bad == [] and checked >= 20
    assert all(apps[0] == "Answer()" for apps in extensions_by_context(text)["cc-features"])
    # the check sees one Answer() taken away from a feature code
    login = "exten => *11,1,Answer()\n same => n,AGI("
    assert text.count(login) == 1
    _, bad = unanswered(text.replace(login, "exten => *11,1,AGI("))
    assert [context for context, _ in bad] == ["cc-features"]
