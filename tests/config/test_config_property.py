"""Property tests: random valid centers, written as YAML, load to the model they describe, render,
and parse back (pyst2's reader) with every DID, phone, queue music class and mailbox in place."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from asterisk.config import Config as AstConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.asterisk import names
from callcenter.config import model as m
from callcenter.config.load import load
from callcenter.config.render import render
from callcenter.errors import ValidationError

ids = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
safe_names = st.from_regex(r"[A-Za-z][A-Za-z .'-]{0,20}[A-Za-z]", fullmatch=True)
secrets = st.from_regex(r"[A-Za-z0-9_.@+-]{1,20}", fullmatch=True)


class TextConfig(AstConfig):  # type: ignore[misc]
    def __init__(self, text: str) -> None:
        self.filename = "<rendered>"
        self.raw_lines = text.splitlines(keepends=True)
        self.lines: list[object] = []
        self.categories: list[object] = []
        self.parse()


@st.composite
def centers(draw: st.DrawFn) -> dict[str, Any]:
    skills = draw(st.lists(ids, min_size=1, max_size=5, unique=True))
    queue_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    music = draw(st.lists(ids.filter(lambda x: x != "default"), max_size=3, unique=True))
    boxes = draw(st.lists(st.integers(100, 9999).map(str), max_size=3, unique=True))
    queues = {}
    for q in queue_ids:
        queues[q] = {
            "name": draw(safe_names),
            "skills": {draw(st.sampled_from(skills)): draw(st.integers(1, 10))},
            "strategy": draw(st.sampled_from([s.value for s in m.Strategy])),
            "recording": draw(st.sampled_from([r.value for r in m.RecordingPolicy])),
            "wrapup": draw(st.integers(0, 300)),
            "service_level": f"{draw(st.integers(1, 100))}/{draw(st.integers(1, 120))}",
            "music_class": draw(st.sampled_from(["default", *music])),
        }
        if boxes and draw(st.booleans()):
            queues[q]["mailbox"] = draw(st.sampled_from(boxes))
    n_agents = draw(st.integers(0, 8))
    agent_ids = draw(st.lists(st.integers(1000, 9999), min_size=n_agents, max_size=n_agents, unique=True))
    agents = [
        {
            "id": str(a),
            "name": draw(safe_names),
            "endpoint": f"ep{a}",
            "extension": str(a + 10000),
            "pin": str(draw(st.integers(1000, 99999999))),
            "sip_password": draw(secrets),
            "skills": {
                s: draw(st.integers(1, 10)) for s in draw(st.lists(st.sampled_from(skills), unique=True))
            },
        }
        for a in agent_ids
    ]
    dids = draw(st.lists(st.integers(10**9, 10**10 - 1), min_size=1, max_size=5, unique=True))
    flows = {
        "main": {
            "start": "menu",
            "nodes": {
                "menu": {
                    "type": "menu",
                    "prompt": "hello",
                    "choices": {str(i): {"queue": q} for i, q in enumerate(queue_ids, start=1)},
                    "fallback": {"hangup": None},
                }
            },
        }
    }
    doc: dict[str, Any] = {
        "center": {
            "name": draw(safe_names),
            "timezone": draw(st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"])),
            "hours": {"mon-fri": "08:00-18:00"},
            "languages": ["en"],
        },
        "asterisk": {
            "ami": {"secret": draw(secrets), "port": draw(st.integers(1024, 65535))},
            "agi": {"port": draw(st.integers(1024, 65535))},
        },
        "skills": skills,
        "queues": queues,
        "flows": flows,
        "numbers": [{"number": f"+1{d}", "flow": "main"} for d in dids],
        "agents": agents,
        "music": {c: {"directory": c} for c in music},
        "mailboxes": {b: {"name": draw(safe_names)} for b in boxes},
    }
    if agents and draw(st.booleans()):
        doc["fallback"] = {"prompt": "hello", "ring_seconds": draw(st.integers(5, 120))}
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(centers())
def test_random_valid_centers_load_render_and_parse_back(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "dialplans"
        d.mkdir()
        (d / "center.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        config = load(d, prompts_dir=None, env={}).config
    # the model is what the YAML says
    assert config.skills == tuple(doc["skills"])
    assert list(config.queues) == list(doc["queues"])
    assert [a.id for a in config.agents.values()] == [a["id"] for a in doc["agents"]]
    for a in doc["agents"]:
        agent = config.agents[a["id"]]
        assert (agent.name, agent.pin.value, dict(agent.skills)) == (a["name"], a["pin"], a["skills"])
    files = {f.name: f.text for f in render(config)}
    assert files == {f.name: f.text for f in render(config)}  # deterministic
    parsed = {name: TextConfig(text) for name, text in files.items()}
    for cfg in parsed.values():
        assert cfg.categories
    dp = parsed["extensions.conf"]
    inbound = [i.value.strip() for c in dp.categories if c.name == names.CTX_INBOUND for i in c.items]
    for num in config.numbers:
        assert f"{num.dialed},1,NoOp(DID {num.dialed} flow main)" in inbound
    pjsip = [c.name for c in parsed["pjsip.conf"].categories]
    for agent in config.agents.values():
        assert pjsip.count(agent.endpoint) == 2
    moh = [c.name for c in parsed["musiconhold.conf"].categories]
    assert moh == ["general", "default", *doc["music"]]
    vm = [i.name for c in parsed["voicemail.conf"].categories if c.name == "callcenter" for i in c.items]
    assert vm == list(doc["mailboxes"])
    manager = {c.name for c in parsed["manager.conf"].categories}
    assert manager == {"general", config.asterisk.ami.username}


BASE_CENTER = "center:\n  name: C\n  timezone: UTC\n  hours: {mon: '09:00-17:00'}\n"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_arbitrary_file_bytes_give_only_located_config_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "a.yaml").write_text(BASE_CENTER)
        (d / "b.yaml").write_bytes(data)
        try:
            load(d, prompts_dir=None, env={})
        except ValidationError as exc:
            assert exc.problems and all(p.file in ("a.yaml", "b.yaml") and p.line for p in exc.problems)


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "queues",
                "flows",
                "agents",
                "numbers",
                "skills",
                "campaigns",
                "music",
                "feature_codes",
                "recording",
                "trunks",
                "nope",
            ]
        ),
        yaml_values,
        max_size=4,
    )
)
def test_arbitrary_structures_give_only_located_config_errors(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "a.yaml").write_text(BASE_CENTER)
        (d / "b.yaml").write_text(yaml.safe_dump(doc))
        try:
            load(d, prompts_dir=None, env={})
        except ValidationError as exc:
            assert exc.problems and all(p.file in ("a.yaml", "b.yaml") and p.line for p in exc.problems)
