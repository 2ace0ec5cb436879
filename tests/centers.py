"""The centers the tests run (no tests here): the example center of ``dialplans/``, as is or
with twenty agents for the end-to-end runs, and a small IVR center built straight from the config
model with instants when it is open, closed and on a holiday."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from asterisk.config import Config as AstConfig

from callcenter.config import model as m
from callcenter.config.load import load, load_config
from callcenter.errors import ValidationError
from callcenter.inbound.ivr import CallInfo

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------ the example center
def example(env: Mapping[str, str] | None = None) -> m.Config:
    """The example center (``dialplans/``); ``env`` for its ``${VAR}`` settings."""
    return load_config(REPO / "dialplans", **({} if env is None else {"env": env}))


CREDS = ("acd-test", "acd-secret")  # the AMI user of the end-to-end runs on the simulated PBX


def twenty_agents(tmp: Path, ring_timeout: float | None = None) -> m.Config:
    """The example center with 20 agents: 8 sales, 6 billing, 6 support (some also general),
    recordings under ``tmp``; ``ring_timeout``: every queue's, if given."""
    base = example()
    agents = {}
    for i in range(20):
        aid = f"{2001 + i}"
        if i < 8:
            skills = {"sales": 5 + i % 5, "general": 3}
        elif i < 14:
            skills = {"billing": 4 + i % 6}
        else:
            skills = {"support": 3 + i % 7, "general": 2}
        agents[aid] = m.Agent(aid, f"Agent {aid}", f"agent{aid}", f"3{aid}", skills, m.Secret("2468"))
    recording = dataclasses.replace(base.recording, directory=str(tmp / "recordings"))
    queues = dict(base.queues)
    if ring_timeout is not None:
        queues = {k: dataclasses.replace(q, ring_timeout=ring_timeout) for k, q in queues.items()}
    return dataclasses.replace(base, agents=agents, recording=recording, queues=queues)


# ------------------------------------------------------------------------------------ a small IVR center
NY = "America/New_York"
# Monday 2026-11-23 15:00 UTC = 10:00 EST: open
OPEN_NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC).timestamp()
# Sunday 2026-11-22 15:00 UTC: closed
CLOSED_NOW = dt.datetime(2026, 11, 22, 15, 0, tzinfo=dt.UTC).timestamp()
# Thanksgiving 2026-11-26 15:00 UTC: holiday
HOLIDAY_NOW = dt.datetime(2026, 11, 26, 15, 0, tzinfo=dt.UTC).timestamp()

DID = "18005550100"


def tr(a: str, b: str) -> m.TimeRange:
    h1, m1 = (int(x) for x in a.split(":"))
    h2, m2 = (int(x) for x in b.split(":"))
    return m.TimeRange(dt.time(h1, m1), dt.time(h2, m2))


def ivr_center() -> m.Center:
    weekday = (tr("08:00", "20:00"),)
    return m.Center(
        name="Test",
        timezone=NY,
        hours={0: weekday, 1: weekday, 2: weekday, 3: weekday, 4: weekday, 5: (tr("09:00", "13:00"),)},
        holidays=(
            m.Holiday(dt.date(2026, 11, 26), "Thanksgiving"),
            m.Holiday(dt.date(2026, 11, 27), "Day after", (tr("09:00", "13:00"),)),
            m.Holiday(dt.date(2026, 12, 25), "Christmas"),
        ),
        languages=("en", "es"),
    )


def queue(qid: str, skills: Mapping[str, int] | None = None, priority: int = 0) -> m.Queue:
    return m.Queue(id=qid, name=qid, skills=m.frozen_map(skills or {}), priority=priority)


def main_flow() -> m.Flow:
    """A flow like the example center's: hours, lookup, welcome, language, menu, sub-menu, collect."""
    nodes: list[m.IVRNode] = [
        m.HoursNode(id="hours", open="lookup", closed="closed", holiday="holiday"),
        m.HangupNode(id="closed", prompt="closed"),
        m.HangupNode(id="holiday", prompt="holiday-closed"),
        m.LookupNode(
            id="lookup",
            timeout=0.3,
            tier_priority=m.frozen_map({"vip": 50, "gold": 20}),
            found="welcome",
            not_found="welcome",
        ),
        m.PromptNode(id="welcome", prompts=("welcome",), next="language"),
        m.LanguageNode(
            id="language",
            prompt="language-menu",
            choices=m.frozen_map({"1": "en", "2": "es"}),
            timeout=3,
            max_attempts=1,
            next="main-menu",
        ),
        m.MenuNode(
            id="main-menu",
            prompt="main-menu",
            choices=m.frozen_map(
                {"1": "sales", "2": "to-billing", "3": "support", "4": "callback", "0": "general"}
            ),
            repeat_key="*",
            timeout=5,
            max_attempts=3,
            invalid_prompt="invalid-option",
            timeout_prompt="no-input",
            fallback="general",
        ),
        m.SetNode(
            id="sales",
            skills=m.frozen_map({"sales": 5}),
            data=m.frozen_map({"intent": "sales"}),
            next="q-sales",
        ),
        m.QueueNode(id="q-sales", queue="sales", prompt="transfer-sales"),
        m.GotoFlowNode(id="to-billing", flow="billing"),
        m.MenuNode(
            id="support",
            prompt="support-menu",
            choices=m.frozen_map({"1": "support-q", "2": "outage", "9": "main-menu"}),
            invalid_prompt="invalid-option",
            fallback="support-q",
        ),
        m.HangupNode(id="outage", prompt="outage-info"),
        m.QueueNode(id="support-q", queue="support"),
        m.CallbackNode(id="callback", queue="general", prompt="callback-confirm"),
        m.QueueNode(id="general", queue="general"),
    ]
    return m.Flow(id="main", start="hours", nodes=m.frozen_map({n.id: n for n in nodes}))


def billing_flow() -> m.Flow:
    nodes: list[m.IVRNode] = [
        m.CollectNode(
            id="account",
            prompt="enter-account",
            variable="account",
            min_digits=6,
            max_digits=8,
            terminator="#",
            timeout=6,
            validation=m.Validation.LUHN,
            max_attempts=3,
            invalid_prompt="account-invalid",
            next="billing-menu",
            fallback="billing-menu",
        ),
        m.MenuNode(
            id="billing-menu",
            prompt="billing-menu",
            choices=m.frozen_map({"1": "q-billing", "2": "dispute", "3": "vm"}),
            invalid_prompt="invalid-option",
            timeout_prompt="no-input",
            fallback="q-billing",
        ),
        m.SetNode(id="dispute", priority=30, data=m.frozen_map({"intent": "dispute"}), next="q-billing"),
        m.QueueNode(id="q-billing", queue="billing", prompt="transfer-billing"),
        m.VoicemailNode(id="vm", mailbox="8200", prompt="voicemail-intro"),
    ]
    return m.Flow(id="billing", start="account", nodes=m.frozen_map({n.id: n for n in nodes}))


def ivr_config(*extra_flows: m.Flow, numbers: Iterable[m.Number] = ()) -> m.Config:
    flows = {f.id: f for f in (main_flow(), billing_flow(), *extra_flows)}
    return m.Config(
        center=ivr_center(),
        trunks=m.frozen_map({"carrier": m.Trunk("carrier", "sip.carrier.example", trust_caller_id=True)}),
        numbers=(m.Number(number="+" + DID, flow="main", trunk="carrier"), *numbers),
        flows=m.frozen_map(flows),
        queues=m.frozen_map(
            {
                "sales": queue("sales", {"sales": 3}, priority=5),
                "support": queue("support", {"support": 2}),
                "billing": queue("billing", {"billing": 4}, priority=10),
                "general": queue("general"),
            }
        ),
    )


def call(caller: str = "2125550100", e164: str | None = "+12125550100", call_id: str = "c1") -> CallInfo:
    return CallInfo(call_id=call_id, caller=caller, dialed=DID, caller_e164=e164)


# ------------------------------------------------------------------------------ config files
BASE = """\
center:
  name: Test center
  timezone: Europe/Paris
  hours: {mon-fri: "09:00-17:00"}
  languages: [en, fr]
skills: [sales, general]
queues:
  sales: {skills: {sales: 3}}
flows:
  main:
    start: menu
    nodes:
      menu:
        type: menu
        prompt: hello
        choices: {1: {queue: sales}}
        fallback: {hangup: bye}
numbers:
  - {number: "+15550001000", flow: main}
agents:
  - {id: "1001", name: Ann, endpoint: a1, extension: "201", pin: "1234", sip_password: pw1,
     skills: {sales: 5}}
"""


def write(tmp_path: Path, extra: str | None = None, *, base: str = BASE) -> Path:
    d = tmp_path / "dialplans"
    d.mkdir(exist_ok=True)
    (d / "base.yaml").write_text(base)
    if extra is not None:
        (d / "extra.yaml").write_text(textwrap.dedent(extra))
    return d


def problems(tmp_path: Path, extra: str | None = None, *, base: str = BASE) -> list[str]:
    d = write(tmp_path, extra, base=base)
    with pytest.raises(ValidationError) as info:
        load(d, prompts_dir=None, env={})
    return [str(p) for p in info.value.problems]


class TextConfig(AstConfig):  # type: ignore[misc]
    """pyst2's config reader on a string (its own ``load()`` leaves the file open)."""

    def __init__(self, text: str) -> None:
        self.filename = "<rendered>"
        self.raw_lines = text.splitlines(keepends=True)
        self.lines: list[object] = []
        self.categories: list[object] = []
        self.parse()
