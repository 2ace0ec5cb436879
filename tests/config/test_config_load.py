"""The YAML loader and validation: the example center, one test per rule with its exact located
message, and hostile input files."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest

from callcenter.config import model as m
from callcenter.config.load import load, load_config
from callcenter.errors import ConfigError, ValidationError
from tests.centers import BASE, REPO, problems, write

EXAMPLE = REPO / "dialplans"


# ------------------------------------------------------------------------------ the example
def test_example_center_loads_with_every_section() -> None:
    c = load_config(EXAMPLE, env={})
    assert c.center.timezone == "America/New_York"
    assert c.center.languages == ("en", "es")
    assert set(c.queues) == {"sales", "billing", "support", "support-es", "general"}
    assert c.flows[c.number("18005550100").flow] is c.flows["main"]  # type: ignore[union-attr]
    assert c.flows[c.number("+12125550122").flow] is c.flows["billing"]  # type: ignore[union-attr]
    assert c.number("13055550133") is not None and c.number("13055550133").language == "es"  # type: ignore[union-attr]
    assert c.agents["1001"].skills["sales"] == 9
    assert c.agents["1001"].pin.value == "4821"
    assert "4821" not in repr(c.agents["1001"])  # secrets hidden from repr
    assert c.supervisors["9001"].pin.value.startswith("scrypt:")  # pin_hash
    assert c.agents["1001"].pin.in_yaml and c.asterisk.ami.secret.in_yaml  # demo values
    assert c.asterisk.ami.secret.value == "change-me-ami"
    assert c.campaigns["renewals"].mode is m.DialMode.PREDICTIVE
    assert c.campaigns["renewals"].window.days == frozenset(range(6))
    assert c.pause_reason_by_digits("2") == c.pause_reasons["lunch"]
    sales = c.queues["sales"]
    assert (sales.sl_percent, sales.sl_seconds) == (80.0, 20.0)
    assert sales.overflow == m.Overflow(m.OverflowKind.QUEUE, "general")
    assert sales.relaxation == (m.Relaxation(30, min_level=3), m.Relaxation(90, add_skill="general"))
    assert sales.recording is m.RecordingPolicy.ALWAYS and sales.rona_action is m.RonaAction.PAUSE
    assert c.queues_of(c.agents["1001"]) == ("sales", "general")
    # every prompt a flow names has audio in every language
    for flow in c.flows.values():
        for node in flow.nodes.values():
            for pid in m.node_prompts(node):
                assert all(c.prompts.has_audio(pid, lang) for lang in c.center.languages), pid


def test_env_overrides_secret_defaults() -> None:
    c = load_config(EXAMPLE, env={"CC_AMI_SECRET": "s3cret-from-env"})
    assert c.asterisk.ami.secret == m.Secret("s3cret-from-env", "CC_AMI_SECRET", in_yaml=False)


def test_inline_actions_become_nodes_with_derived_ids() -> None:
    c = load_config(EXAMPLE, env={})
    menu = c.flows["main"].nodes["main-menu"]
    assert isinstance(menu, m.MenuNode)
    assert menu.choices["1"] == "sales"
    assert menu.choices["2"] == "main-menu.2"
    assert c.flows["main"].nodes["main-menu.2"] == m.GotoFlowNode(id="main-menu.2", flow="billing")
    assert c.flows["main"].nodes["main-menu.fallback"] == m.QueueNode(
        id="main-menu.fallback", queue="general"
    )
    assert menu.repeat_key == "*" and menu.max_attempts == 3
    account = c.flows["billing"].nodes["account"]
    assert isinstance(account, m.CollectNode)
    assert (account.min_digits, account.max_digits, account.terminator) == (6, 8, "#")
    assert account.validation is m.Validation.LUHN


def test_schedule_status_handles_hours_and_holidays() -> None:
    c = load_config(EXAMPLE, env={})
    center = c.center
    assert center.status_at(dt.datetime(2026, 11, 23, 9, 0)) is m.ScheduleStatus.OPEN  # Monday
    assert center.status_at(dt.datetime(2026, 11, 23, 20, 0)) is m.ScheduleStatus.CLOSED
    assert center.status_at(dt.datetime(2026, 11, 22, 10, 0)) is m.ScheduleStatus.CLOSED  # Sunday
    assert center.status_at(dt.datetime(2026, 11, 26, 10, 0)) is m.ScheduleStatus.HOLIDAY
    assert center.status_at(dt.datetime(2026, 11, 27, 10, 0)) is m.ScheduleStatus.OPEN  # special hours
    assert center.status_at(dt.datetime(2026, 11, 27, 14, 0)) is m.ScheduleStatus.HOLIDAY


def test_base_fixture_is_valid(tmp_path: Path) -> None:
    c = load(write(tmp_path), prompts_dir=None, env={}).config
    assert c.center.hours[0] == (m.TimeRange(dt.time(9), dt.time(17)),)
    assert 5 not in c.center.hours


# ------------------------------------------------------------------------------ one test per rule
def test_all_problems_reported_in_one_run_sorted_by_file_and_line(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        queues:
          q1: {skills: {nosuch: 3}, music_class: nope}
          q2: {skills: {sales: 11}}
        """,
    )
    assert got == [
        "extra.yaml:2: queues.q1.skills.nosuch: unknown skill 'nosuch' (expected one of: sales, general)",
        "extra.yaml:2: queues.q1.music_class: unknown music class 'nope' (expected one of: default)",
        "extra.yaml:3: queues.q2.skills.sales: expected a whole number 1..10, found 11",
    ]


def test_unknown_queue(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        flows:
          second:
            start: q
            nodes:
              q: {type: queue, queue: nosuch}
        """,
    )
    assert got == [
        "extra.yaml:5: flows.second.nodes.q.queue: unknown queue 'nosuch' (expected one of: sales)"
    ]


def test_unknown_flow_in_number_and_goto(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        numbers:
          - {number: "+15550002000", flow: nowhere}
        flows:
          second:
            start: go
            nodes:
              go: {type: goto_flow, flow: elsewhere}
        """,
    )
    assert got == [
        "extra.yaml:2: numbers.+15550002000.flow: unknown flow 'nowhere' (expected one of: main, second)",
        "extra.yaml:7: flows.second.nodes.go.flow: unknown flow 'elsewhere' (expected one of: main, second)",
    ]


def test_unknown_node(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        flows:
          second:
            start: first
            nodes:
              first: {type: prompt, prompts: [hello], next: missing}
        """,
    )
    assert got == [
        "extra.yaml:5: flows.second.nodes.first: unknown node 'missing' (no such node in flow 'second')"
    ]


def test_unknown_skill_in_agent(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        agents:
          - id: "1002"
            name: Bo
            endpoint: a2
            extension: "202"
            pin: "1234"
            sip_password: pw2
            skills: {sales: 2, juggling: 4}
        """,
    )
    assert got == [
        "extra.yaml:8: agents.1002.skills.juggling: unknown skill 'juggling' "
        "(expected one of: sales, general)"
    ]


def test_unknown_prompt_and_missing_audio(tmp_path: Path) -> None:
    d = write(tmp_path)
    prompts = tmp_path / "ivr_prompts"
    (prompts / "en").mkdir(parents=True)
    (prompts / "prompts.yaml").write_text("hello:\n  en: Hello\n  fr: Bonjour\n")
    (prompts / "en" / "hello.wav").write_bytes(b"RIFF")
    with pytest.raises(ValidationError) as info:
        load(d, prompts_dir=prompts, env={})
    assert [str(p) for p in info.value.problems] == [
        "base.yaml:13: flows.main.nodes.menu: prompt 'hello' has no audio for language 'fr' "
        "(expected ivr_prompts/fr/hello.wav; run make prompts)",
        "base.yaml:17: flows.main.nodes.menu.fallback: unknown prompt 'bye' "
        "(not in ivr_prompts/prompts.yaml)",
    ]


def test_unknown_music_class_and_mailbox_and_trunk(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        queues:
          q1: {skills: {sales: 1}, music_class: jazz, mailbox: "9999"}
        numbers:
          - {number: "+15550002000", flow: main, trunk: nope}
        """,
    )
    assert got == [
        "extra.yaml:2: queues.q1.music_class: unknown music class 'jazz' (expected one of: default)",
        "extra.yaml:2: queues.q1.mailbox: unknown mailbox '9999' (none is defined)",
        "extra.yaml:4: numbers.+15550002000.trunk: unknown trunk 'nope' (none is defined)",
    ]


def test_duplicate_extensions_and_endpoints(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        agents:
          - {id: "1002", name: Bo, endpoint: a1, extension: "201", pin: "1234", sip_password: p, skills: {}}
        """,
    )
    assert got == [
        "extra.yaml:2: agents.1002.extension: duplicate extension '201' (also agent 1001)",
        "extra.yaml:2: agents.1002.endpoint: duplicate endpoint 'a1' (also agent 1001)",
    ]


def test_duplicate_dids(tmp_path: Path) -> None:
    got = problems(tmp_path, 'numbers:\n  - {number: "+15550001000", flow: main}\n')
    assert got == [
        "extra.yaml:2: numbers.+15550001000: duplicate number +15550001000 "
        "(first at base.yaml:19; a DID maps to one flow)"
    ]


def test_duplicate_agent_ids(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        'agents:\n  - {id: "1001", name: Bo, endpoint: a2, extension: "202", pin: "1234", sip_password: p}\n',
    )
    assert got == ["extra.yaml:2: agents.1001: duplicate agent id '1001' (first at base.yaml:21)"]


def test_overlapping_feature_codes(tmp_path: Path) -> None:
    got = problems(tmp_path, 'feature_codes:\n  supervisor_ask: "*8"\n  agent_unpause: "*11"\n')
    assert got == [
        "extra.yaml:2: feature_codes.supervisor_ask: feature code '*8' overlaps supervisor_listen '*81' "
        "(one is a prefix of the other)",
        "extra.yaml:2: feature_codes.supervisor_ask: feature code '*8' overlaps supervisor_whisper '*82' "
        "(one is a prefix of the other)",
        "extra.yaml:2: feature_codes.supervisor_ask: feature code '*8' overlaps supervisor_barge '*83' "
        "(one is a prefix of the other)",
        "extra.yaml:3: feature_codes.agent_unpause: feature code '*11' is also agent_login",
    ]


def test_menu_digit_used_twice(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        flows:
          second:
            start: m
            nodes:
              m:
                type: menu
                prompt: hello
                repeat_key: "1"
                choices:
                  1: {queue: sales}
                  "1": {queue: sales}
                fallback: {queue: sales}
        """,
    )
    assert got == [
        "extra.yaml:8: flows.second.nodes.m.repeat_key: menu digit '1' is used twice "
        "(as a choice and as the repeat key)",
        "extra.yaml:11: flows.second.nodes.m.choices.1: duplicate key (first given at line 10)",
    ]


def test_unreachable_node(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        flows:
          second:
            start: a
            nodes:
              a: {type: hangup}
              orphan: {type: hangup}
        """,
    )
    assert got == [
        "extra.yaml:6: flows.second.nodes.orphan: node 'orphan' is unreachable from the start node 'a'"
    ]


def test_flow_loop_without_caller_input(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        flows:
          second:
            start: a
            nodes:
              a: {type: prompt, prompts: [hello], next: b}
              b: {type: set, priority: 5, next: a}
          third:
            start: x
            nodes:
              x: {type: goto_flow, flow: fourth}
          fourth:
            start: y
            nodes:
              y: {type: prompt, prompt: hello, next: {goto_flow: third}}
        """,
    )
    assert got == [
        "extra.yaml:5: flows.second.nodes.a: flow loop with no caller input: a -> b -> a "
        "(add a menu or collect, or end it)",
        "extra.yaml:10: flows.third.nodes.x: flow loop with no caller input: "
        "x -> fourth.y -> fourth.y.next -> x (add a menu or collect, or end it)",
    ]


def test_loop_through_caller_input_is_fine(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        """\
        flows:
          second:
            start: a
            nodes:
              a: {type: prompt, prompts: [hello], next: m}
              m: {type: menu, prompt: hello, choices: {9: a}, fallback: a}
        """,
    )
    assert "second" in load(d, prompts_dir=None, env={}).config.flows


def test_hours_that_do_not_parse(tmp_path: Path) -> None:
    base = BASE.replace(
        'hours: {mon-fri: "09:00-17:00"}', 'hours: {mon-fri: "9h-17h", sat: "10:00-09:00", xyz: closed}'
    )
    got = problems(tmp_path, base=base)
    assert got == [
        "base.yaml:4: center.hours.mon-fri: expected hours HH:MM-HH:MM (or closed), found '9h-17h'",
        "base.yaml:4: center.hours.sat: expected the end after the start, found '10:00-09:00'",
        "base.yaml:4: center.hours.xyz: expected a weekday (mon..sun) or a range such as mon-fri, "
        "found 'xyz'",
    ]


def test_timezone_that_does_not_exist(tmp_path: Path) -> None:
    got = problems(tmp_path, base=BASE.replace("Europe/Paris", "Mars/Olympus_Mons"))
    assert got == [
        "base.yaml:3: center.timezone: unknown time zone 'Mars/Olympus_Mons' "
        "(expected an IANA name such as America/New_York)"
    ]


def test_unknown_keys_are_errors_with_a_hint(tmp_path: Path) -> None:
    got = problems(tmp_path, "queues:\n  q1: {skills: {sales: 1}, wrap_up: 10}\nqueus: {}\n")
    assert got == [
        "extra.yaml:2: queues.q1.wrap_up: unknown key 'wrap_up'; did you mean 'wrapup'?",
        "extra.yaml:3: queus: unknown section 'queus'; did you mean 'queues'?",
    ]


def test_missing_required_keys(tmp_path: Path) -> None:
    got = problems(tmp_path, 'agents:\n  - {id: "1002", name: Bo}\n')
    assert got == [
        "extra.yaml:2: agents.1002.endpoint: missing required key 'endpoint' (a value)",
        "extra.yaml:2: agents.1002.extension: missing required key 'extension' (a value)",
        "extra.yaml:2: agents.1002.pin: missing required key 'pin' (a PIN, ${ENV_VAR} or pin_hash)",
        "extra.yaml:2: agents.1002.sip_password: missing required key 'sip_password' "
        "(the phone's SIP password or ${ENV_VAR})",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", '"Ann\\r\\nAction: Hangup"', "expected text without"),
        ("name", '"Ann, Boss"', "found 'Ann, Boss'"),
        ("name", '"Ann)"', "found 'Ann)'"),
        ("name", '"Ann; x"', "found 'Ann; x'"),
        ("endpoint", '"a1,PJSIP/x"', "expected a PJSIP endpoint name"),
        ("extension", '"201&202"', "expected an extension"),
        ("pin", '"12;4"', "expected a secret"),
    ],
)
def test_unsafe_values_are_refused(tmp_path: Path, field: str, value: str, message: str) -> None:
    agent = {
        "id": '"1002"',
        "name": "Bo",
        "endpoint": "a2",
        "extension": '"202"',
        "pin": '"1234"',
        "sip_password": "p",
    }
    agent[field] = value
    body = ", ".join(f"{k}: {v}" for k, v in agent.items())
    got = problems(tmp_path, f"agents:\n  - {{{body}}}\n")
    assert len(got) == 1 and got[0].startswith(f"extra.yaml:2: agents.1002.{field}: ") and message in got[0]


@pytest.mark.parametrize("path", ["../secrets.csv", "/etc/passwd", "a/../../b.csv", "x;rm.csv"])
def test_path_traversal_is_refused(tmp_path: Path, path: str) -> None:
    got = problems(
        tmp_path,
        f"""\
        campaigns:
          c1: {{name: C, queue: sales, mode: progressive, caller_id: "+15550001000",
               contacts: "{path}", identification_prompt: hello}}
        """,
    )
    assert got == [
        "extra.yaml:3: campaigns.c1.contacts: expected a relative file path inside the config directory "
        f"(no '..', no leading '/'), found {path!r}"
    ]


def test_missing_env_secret(tmp_path: Path) -> None:
    got = problems(tmp_path, base=BASE.replace("sip_password: pw1", 'sip_password: "${NOT_SET_ANYWHERE}"'))
    assert got == ["base.yaml:21: agents.1001.sip_password: environment variable NOT_SET_ANYWHERE is not set"]


def test_campaign_files_must_exist(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        """\
        campaigns:
          c1: {queue: sales, mode: predictive, caller_id: "+15550001000", contacts: c.csv,
               dnc: dnc.txt, identification_prompt: hello}
        """,
    )
    (d / "c.csv").write_text("phone\n")
    with pytest.raises(ValidationError) as info:
        load(d, prompts_dir=None, env={})
    assert [str(p) for p in info.value.problems] == [
        f"extra.yaml:3: campaigns.c1.dnc: file 'dnc.txt' does not exist in {d}"
    ]


def test_no_norway_problem_and_no_octal(tmp_path: Path) -> None:
    base = BASE.replace("languages: [en, fr]", "languages: [en, no]").replace(
        'extension: "201"', "extension: 0201"
    )
    d = write(tmp_path, base=base)
    c = load(d, prompts_dir=None, env={}).config
    assert c.center.languages == ("en", "no")
    assert c.agents["1001"].extension == "0201"


# ------------------------------------------------------------------------------ hostile files
def _file_problems(tmp_path: Path, data: bytes) -> list[str]:
    d = write(tmp_path)
    (d / "zz.yaml").write_bytes(data)
    with pytest.raises(ValidationError) as info:
        load(d, prompts_dir=None, env={})
    return [str(p) for p in info.value.problems]


def test_empty_file(tmp_path: Path) -> None:
    assert _file_problems(tmp_path, b"# only a comment\n\n") == [
        "zz.yaml:1: empty file: expected a mapping of sections (center:, queues:, ...)"
    ]


def test_binary_file(tmp_path: Path) -> None:
    assert _file_problems(tmp_path, b"\x7fELF\x02\x01\x00\x00garbage") == [
        "zz.yaml:1: binary file: expected UTF-8 YAML text"
    ]


def test_not_utf8(tmp_path: Path) -> None:
    assert _file_problems(tmp_path, b"skills:\n  - caf\xe9\n") == [
        "zz.yaml:2: not UTF-8 text: expected UTF-8 YAML"
    ]


def test_tabs(tmp_path: Path) -> None:
    got = _file_problems(tmp_path, b"skills:\n\t- x\n")
    assert len(got) == 1 and got[0].startswith("zz.yaml:2: YAML syntax error: ")
    assert got[0].endswith("(a tab character: indent with spaces)")


def test_duplicate_keys(tmp_path: Path) -> None:
    assert _file_problems(tmp_path, b"music:\n  a: {directory: x}\n  a: {directory: y}\n") == [
        "zz.yaml:3: music.a: duplicate key (first given at line 2)"
    ]


def test_anchor_and_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    bomb = b'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    bomb += b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    start = time.perf_counter()
    got = _file_problems(tmp_path, bomb)
    assert time.perf_counter() - start < 5
    assert got == ["zz.yaml:1: YAML syntax error: anchors (&a) are not allowed; write the value out"]


def test_alias_alone_is_refused(tmp_path: Path) -> None:
    got = _file_problems(tmp_path, b"skills:\n  - *x\n")
    assert len(got) == 1 and got[0].startswith("zz.yaml:2: YAML syntax error: ")


def test_tags_are_refused(tmp_path: Path) -> None:
    got = _file_problems(tmp_path, b"skills: !!python/object:os.system [x]\n")
    assert got == [
        "zz.yaml:1: YAML syntax error: tags (tag:yaml.org,2002:python/object:os.system) are not allowed"
    ]


def test_ten_megabyte_file_is_refused_quickly(tmp_path: Path) -> None:
    start = time.perf_counter()
    got = _file_problems(tmp_path, b"skills:\n" + b"  - abcdefgh\n" * 900_000)
    assert time.perf_counter() - start < 5
    assert got == ["zz.yaml:1: file too large (11700008 bytes; the limit is 1000000)"]


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    got = _file_problems(tmp_path, b"a: " + b"[" * 100 + b"]" * 100 + b"\n")
    assert got == ["zz.yaml:1: YAML syntax error: document nested too deeply"]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert _file_problems(tmp_path, b"- a\n- b\n") == [
        "zz.yaml:1: expected a mapping of sections (center:, queues:, ...), found a list"
    ]


def test_section_given_twice(tmp_path: Path) -> None:
    got = _file_problems(tmp_path, b"center:\n  name: x\n")
    assert got == ["zz.yaml:1: center: section 'center' is already given at base.yaml:1"]


def test_not_a_directory_and_no_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        load(tmp_path / "nope", prompts_dir=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no \*\.yaml files found"):
        load(tmp_path / "empty", prompts_dir=None)


def test_example_copy_with_one_mistake_reports_file_and_line(tmp_path: Path) -> None:
    d = tmp_path / "dialplans"
    shutil.copytree(EXAMPLE, d)
    shutil.copytree(REPO / "ivr_prompts", tmp_path / "ivr_prompts")
    acd = (
        (d / "acd.yaml").read_text().replace("overflow: {queue: general}\n", "overflow: {queue: genral}\n", 1)
    )
    (d / "acd.yaml").write_text(acd)
    line = acd.splitlines().index("    overflow: {queue: genral}") + 1
    with pytest.raises(ValidationError) as info:
        load(d, env={})
    assert [str(p) for p in info.value.problems] == [
        f"acd.yaml:{line}: queues.sales.overflow.queue: unknown queue 'genral' "
        "(expected one of: sales, billing, support, support-es, general)"
    ]


def test_time_ranges_until_midnight() -> None:
    day = m.TimeRange(dt.time(8, 0), dt.time(0, 0))
    assert day.contains(dt.time(23, 59)) and not day.contains(dt.time(7, 59))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            'numbers:\n  - {number: "+15550002000", flow: main, language: de}\n',
            "extra.yaml:2: numbers.+15550002000.language: unknown language 'de' (expected one of: en, fr)",
            id="unknown-language",
        ),
        pytest.param(
            "queues:\n  q1: {skills: {sales: 1}, rona_action: pause, rona_pause_reason: nap}\n",
            "extra.yaml:2: queues.q1.rona_pause_reason: unknown pause reason 'nap' (none is defined)",
            id="unknown-pause-reason",
        ),
        pytest.param(
            "queues:\n  q1: {skills: {sales: 1}, rona_action: pause}\n",
            "extra.yaml:2: queues.q1.rona_action: rona_action is pause but no rona_pause_reason is given",
            id="pause-without-reason",
        ),
        pytest.param(
            "queues:\n  q1: {skills: {sales: 1}, max_wait: 60, overflow: {queue: q1}}\n",
            "extra.yaml:2: queues.q1.overflow.queue: a queue cannot overflow to itself",
            id="overflow-to-itself",
        ),
        pytest.param(
            "queues:\n  q1: {skills: {sales: 1}, overflow: {voicemail: '1'}}\n"
            "mailboxes:\n  '1': {name: Box}\n",
            "extra.yaml:2: queues.q1.overflow: overflow is given but max_wait is not "
            "(when would it overflow?)",
            id="overflow-without-max-wait",
        ),
        pytest.param(
            "queues:\n  q1: {skills: {sales: 1}, max_wait: 60, overflow: {queue: q2}}\n"
            "  q2: {skills: {sales: 1}, max_wait: 60, overflow: {queue: q1}}\n",
            "extra.yaml:2: queues.q1.overflow.queue: queue overflow loop: q1 -> q2 -> q1",
            id="overflow-loop",
        ),
        pytest.param(
            "queues:\n  q1: {skills: {sales: 1}, max_wait: 60, overflow: {queue: sales, voicemail: '1'}}\n",
            "extra.yaml:2: queues.q1.overflow: expected exactly one of queue, voicemail, flow, hangup; "
            "found ['queue', 'voicemail']",
            id="overflow-two-targets",
        ),
        pytest.param(
            "queues:\n  q1:\n    skills: {sales: 1}\n    relaxation:\n"
            "      - {after_seconds: 60, min_level: 1}\n"
            "      - {after_seconds: 30, add_skill: general}\n",
            "extra.yaml:6: queues.q1.relaxation.1.after_seconds: expected steps in increasing after_seconds, "
            "found 30",
            id="relaxation-order",
        ),
        pytest.param(
            "queues:\n  q1:\n    skills: {sales: 1}\n    relaxation:\n      - {after_seconds: 60}\n",
            "extra.yaml:5: queues.q1.relaxation.0: expected min_level or add_skill in a relaxation step, "
            "found neither",
            id="relaxation-empty-step",
        ),
        pytest.param(
            "pause_reasons:\n  a: {digits: '1'}\n  b: {digits: '1'}\n",
            "extra.yaml:3: pause_reasons.b.digits: pause digits '1' are used twice (also by 'a')",
            id="pause-digits-twice",
        ),
        pytest.param(
            "trunks:\n  t1: {host: sip.example.net}\n",
            "extra.yaml:2: trunks.t1: a trunk needs auth (username/password) or match (the carrier's IPs), "
            "found neither",
            id="trunk-without-auth-or-match",
        ),
        pytest.param(
            "supervisors:\n"
            '  - {id: "9", name: Sue, endpoint: s9, pin: "1234", sip_password: p, queues: [nope]}\n',
            "extra.yaml:2: supervisors.9.queues.0: unknown queue 'nope' (expected one of: sales)",
            id="supervisor-unknown-queue",
        ),
        pytest.param(
            "fallback: {prompt: hello, endpoints: [a1, zz]}\n",
            "extra.yaml:1: fallback.endpoints.1: unknown endpoint 'zz' (not an agent's or supervisor's)",
            id="fallback-unknown-endpoint",
        ),
        pytest.param(
            "campaigns:\n  c1: {queue: sales, mode: predictive, caller_id: '+15550001000',\n"
            "       contacts: base.yaml, amd_action: message, identification_prompt: hello}\n",
            "extra.yaml:3: campaigns.c1.amd_message: amd_action is message but no amd_message prompt "
            "is given",
            id="amd-message-missing",
        ),
        pytest.param(
            "flows:\n  f2:\n    start: c\n    nodes:\n"
            "      c: {type: collect, prompt: hello, variable: acct,\n"
            "          min_digits: 9, max_digits: 4, next: {hangup: null}, fallback: {hangup: null}}\n",
            "extra.yaml:6: flows.f2.nodes.c.min_digits: expected min_digits <= max_digits, found 9 > 4",
            id="collect-min-over-max",
        ),
        pytest.param(
            "flows:\n  f2:\n    start: l\n    nodes:\n"
            "      l: {type: language, prompt: hello, choices: {1: en, 2: de}, next: {hangup: null}}\n",
            "extra.yaml:5: flows.f2.nodes.l.choices.2: unknown language 'de' (expected one of: en, fr)",
            id="language-choice-unknown",
        ),
        pytest.param(
            "flows:\n  f2:\n    start: x\n    nodes:\n      x: {type: dance, next: y}\n",
            "extra.yaml:5: flows.f2.nodes.x.type: expected a node type (prompt, menu, collect, hours, "
            "language, set, lookup, goto_flow, queue, voicemail, callback, hangup), found 'dance'",
            id="unknown-node-type",
        ),
    ],
)
def test_more_rules(tmp_path: Path, extra: str, expected: str) -> None:
    assert problems(tmp_path, extra) == [expected]


def test_control_characters(tmp_path: Path) -> None:
    assert _file_problems(tmp_path, b"skills:\n  - a\x01b\n") == [
        "zz.yaml:2: not YAML text: character U+0001 is not allowed (control characters are refused)"
    ]


# ------------------------------------------------------------------ a structural error stops there
@pytest.mark.parametrize("indent", ["  ", "   ", "      "])
def test_a_bad_indentation_is_reported_once_on_its_line_with_the_cause(tmp_path: Path, indent: str) -> None:
    d = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", d)
    lines = (d / "acd.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    i = lines.index('    overflow: {voicemail: "8200"}\n')  # inside the billing queue
    n = i + 1
    lines[i] = indent + lines[i].lstrip(" ")
    (d / "acd.yaml").write_text("".join(lines), encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        load(d, prompts_dir=None, env={})
    got = [str(p) for p in info.value.problems]
    # One problem: the syntax error on line 34 with its likely cause, and no knock-on errors from
    # the other files ("unknown queue 'sales' (none is defined)" ...).
    assert len(got) == 1, got
    assert got[0].startswith(
        f"acd.yaml:{n}: YAML syntax error: bad indentation: line {n} is indented {len(indent)} spaces "
        f"where the lines around it ({n - 1} and {n + 1}) have 4"
    ), got


def test_other_files_are_still_read_when_one_does_not_parse(tmp_path: Path) -> None:
    d = write(tmp_path)
    (d / "zz.yaml").write_bytes(b"skills: [a\n")
    (d / "yy.yaml").write_bytes(b"queuez: {}\n")
    got = [str(p) for p in _problems_of(d)]
    assert [g.split(":")[0] for g in got] == ["yy.yaml", "zz.yaml"]  # yy's own mistake, zz's syntax


def _problems_of(d: Path) -> list[ConfigError]:
    with pytest.raises(ValidationError) as info:
        load(d, prompts_dir=None, env={})
    return list(info.value.problems)


def test_queue_thresholds_load_and_default() -> None:
    center = load_config(REPO / "dialplans")
    sales = center.queues["sales"].thresholds
    assert sales.service_level == m.Threshold(80, 65)
    assert sales.longest_wait == m.Threshold(30, 60)
    assert sales.waiting == m.Threshold(4, 8)
    assert center.queues["general"].thresholds == m.Thresholds()  # defaults from its own target


def test_queue_thresholds_errors_are_located(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        """\
        queues:
          q1:
            skills: {sales: 1}
            thresholds:
              service_level: {amber: 70, red: 90}
              longest_wait: {amber: 60, red: 30}
              waiting: {amber: many}
              queue_size: {amber: 3}
          q2:
            skills: {sales: 1}
            thresholds: {service_level: {}, longest_wait: {amber: 0}}
        """,
    )
    assert got == [
        "extra.yaml:5: queues.q1.thresholds.service_level.red: expected red at or below amber (70), found 90",
        "extra.yaml:6: queues.q1.thresholds.longest_wait.red: expected red at or above amber (60), found 30",
        "extra.yaml:7: queues.q1.thresholds.waiting.amber: expected a number 1..10000, found 'many'",
        "extra.yaml:8: queues.q1.thresholds.queue_size: unknown key 'queue_size'; "
        "expected one of longest_wait, service_level, waiting",
        "extra.yaml:11: queues.q2.thresholds.service_level: expected amber or red (or both), found neither",
        "extra.yaml:11: queues.q2.thresholds.longest_wait.amber: expected a number 1..86400, found 0",
    ]


def test_the_apply_user_is_its_own_user_with_a_secret(tmp_path: Path) -> None:
    c = load_config(EXAMPLE, env={"CC_AMI_APPLY_SECRET": "apply-from-env-7Qw"})
    assert c.asterisk.ami_apply == m.AMIApplyUser(
        "callcenter-apply", m.Secret("apply-from-env-7Qw", "CC_AMI_APPLY_SECRET", in_yaml=False)
    )
    d = tmp_path / "dialplans"
    shutil.copytree(EXAMPLE, d)
    shutil.copytree(REPO / "ivr_prompts", tmp_path / "ivr_prompts")
    original = (d / "center.yaml").read_text()
    at = original.splitlines().index("    username: callcenter-apply") + 1
    for old, new, expected in (
        (
            "    username: callcenter-apply\n",
            "    username: callcenter\n",
            f"center.yaml:{at}: asterisk.ami_apply.username: the apply user must differ from the"
            " controller's AMI user 'callcenter'",
        ),
        (
            "    secret: ${CC_AMI_APPLY_SECRET:-change-me-ami-apply}",
            "    sekret: x",
            f"center.yaml:{at + 1}: asterisk.ami_apply.sekret: unknown key 'sekret'; did you mean 'secret'?",
        ),
    ):
        (d / "center.yaml").write_text(original.replace(old, new, 1))
        with pytest.raises(ValidationError) as info:
            load(d, env={})
        assert expected in [str(p) for p in info.value.problems]


def test_campaign_blend_rule_loads_and_its_errors_are_located(tmp_path: Path) -> None:
    center = load_config(REPO / "dialplans")
    assert center.campaigns["reminders"].blend == m.CampaignBlend(inbound_first=True, min_idle_for_inbound=1)
    got = problems(
        tmp_path,
        """\
        campaigns:
          c1:
            queue: sales
            mode: progressive
            caller_id: "+15550001000"
            contacts: base.yaml
            identification_prompt: hello
            blend: {inbound_first: maybe, min_idle_for_inbound: -1, first: true}
        """,
    )
    assert got == [
        "extra.yaml:8: campaigns.c1.blend.inbound_first: expected true or false, found 'maybe'",
        "extra.yaml:8: campaigns.c1.blend.min_idle_for_inbound: expected a whole number 0..1000, found -1",
        "extra.yaml:8: campaigns.c1.blend.first: unknown key 'first'; "
        "expected one of inbound_first, min_idle_for_inbound",
    ]


def test_campaign_amd_settings_load_render_and_their_errors_are_located(tmp_path: Path) -> None:
    center = load_config(REPO / "dialplans")
    amd = center.campaigns["renewals"].amd_settings
    assert amd.amd_args() == "2500,1500,800,5000,100,50,3,256,5000"
    assert (amd.beep_silence, amd.beep_max_wait) == (1000, 20)
    got = problems(
        tmp_path,
        """\
        campaigns:
          c1:
            queue: sales
            mode: progressive
            caller_id: "+15550001000"
            contacts: base.yaml
            identification_prompt: hello
            amd_settings:
              initial_silence: 4000
              total_analysis_time: 3000
              max_words: 0
              beep_wait: 5
        """,
    )
    assert got == [
        "extra.yaml:10: campaigns.c1.amd_settings.total_analysis_time: expected total_analysis_time above"
        " initial_silence (4000), found 3000",
        "extra.yaml:11: campaigns.c1.amd_settings.max_words: expected a whole number 1..10, found 0",
        "extra.yaml:12: campaigns.c1.amd_settings.beep_wait: unknown key 'beep_wait';"
        " did you mean 'beep_max_wait'?",
    ]
