"""The dial-out policy: its verdicts, its YAML with located errors, and the rendered dialplan's own
check of the same prefixes (read back with the simulator's dialplan reader)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from callcenter.config import dialout
from callcenter.config import model as m
from callcenter.config.load import load
from callcenter.config.render import render
from callcenter.errors import DialOutRefusedError
from callcenter.sim import dialplan
from tests.centers import example, problems, write

T, CB, CAMP = m.DialPurpose.TRANSFER, m.DialPurpose.CALLBACK, m.DialPurpose.CAMPAIGN


@pytest.mark.parametrize(
    ("raw", "purpose", "allowed", "reason", "number"),
    [
        ("+12125550199", CB, True, "allowed", "+12125550199"),
        ("(212) 555-0199", CAMP, True, "allowed", "+12125550199"),
        ("+18005550100", T, True, "allowed", "+18005550100"),
        ("2002", T, True, "internal", "2002"),
        ("2002", CB, False, "invalid_number", ""),  # extensions are for transfers only
        ("+19005550100", T, False, "premium_rate", "+19005550100"),
        ("911", T, False, "emergency", ""),
        ("112", CB, False, "emergency", ""),
        ("+881612345678", CAMP, False, "satellite", "+881612345678"),
        ("+870773111632", T, False, "satellite", "+870773111632"),
        ("+447911123456", T, False, "country", "+447911123456"),
        ("+18095550123", CB, False, "country", "+18095550123"),  # +1 but the Dominican Republic
        ("+15559870000", T, False, "invalid_number", ""),
        ("1" * 70, T, False, "invalid_number", ""),
    ],
)
def test_verdicts_on_the_example_center(
    raw: str, purpose: m.DialPurpose, allowed: bool, reason: str, number: str
) -> None:
    assert dialout.decide(example(), raw, purpose) == dialout.Verdict(allowed, reason, number)


def test_number_types_deny_and_allow_prefixes() -> None:
    base = example()
    gb = dataclasses.replace(base, dialout=m.DialOut(countries=("GB",), deny=("+4420",)))
    assert dialout.decide(gb, "+447911123456", T).allowed  # a UK mobile (typed GG by phonenumbers)
    assert dialout.decide(gb, "+448712345678", T).reason == "premium_rate"
    assert dialout.decide(gb, "+442079460000", T).reason == "denied_prefix"
    shared = dataclasses.replace(gb, dialout=m.DialOut(countries=("GB",), number_types=("fixed_line", "uan")))
    assert dialout.decide(shared, "+443001234567", T).allowed  # a UK 03 number (UAN)
    assert dialout.decide(shared, "+447911123456", T).reason == "number_type"  # mobiles not listed
    ny = dataclasses.replace(base, dialout=m.DialOut(allow=("+1212",), internal=False))
    assert dialout.decide(ny, "+12125550199", CB).allowed
    assert dialout.decide(ny, "+13055550144", CB).reason == "not_allowed"
    assert dialout.decide(ny, "2002", T).reason == "invalid_number"


def test_check_raises_a_stable_code() -> None:
    with pytest.raises(DialOutRefusedError) as err:
        dialout.check(example(), "+19005550100", T)
    assert (err.value.code, err.value.reason, err.value.purpose) == (
        "dial_out_refused",
        "premium_rate",
        "transfer",
    )
    assert dialout.check(example(), "212 555 0199", CB) == "+12125550199"


def test_the_yaml_section_and_its_located_errors(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        """
        dialout:
          countries: [us, CA]
          number_types: [mobile]
          allow: ["+1212", "+1416"]
          deny: ["+1900"]
          internal: false
        """,
    )
    policy = load(d, prompts_dir=None, env={}).config.dialout
    assert policy == m.DialOut(("US", "CA"), ("mobile",), ("+1212", "+1416"), ("+1900",), internal=False)
    got = problems(
        tmp_path,
        """
        dialout:
          countries: [XX]
          number_types: [premium]
          allow: ["+19001234"]
          deny: ["1900"]
          colour: red
        """,
    )
    assert got == [
        "extra.yaml:3: dialout.countries.0: expected an ISO country code such as US, found 'XX'",
        "extra.yaml:4: dialout.number_types.0: expected one of "
        + ", ".join(m.NUMBER_TYPES)
        + ", found 'premium'",
        "extra.yaml:6: dialout.deny.0: expected an E.164 prefix such as +1900, found '1900'",
        "extra.yaml:7: dialout.colour: unknown key 'colour'; "
        "expected one of allow, countries, deny, internal, number_types",
    ]
    got = problems(tmp_path, 'dialout:\n  allow: ["+19001234"]\n')
    assert got == ["extra.yaml:2: dialout.allow.0: allowed prefix +19001234 lies inside denied prefix +1900"]


def _transfer_plan(config: m.Config) -> dialplan.Dialplan:
    text = next(f.text for f in render(config) if f.name == "extensions.conf")
    return dialplan.parse(text)


def _fate(plan: dialplan.Dialplan, target: str) -> str:
    ext = plan.match("cc-transfer", target)
    assert ext is not None, target
    return " ".join(f"{s.app}({s.data})" for _, s in sorted(ext.steps.items()))


def test_the_rendered_dialplan_checks_the_same_policy() -> None:
    plan = _transfer_plan(example())
    assert "Dial(PJSIP/${EXTEN}@dialer,60)" in _fate(plan, "+12125550199")
    for refused in ("+19005550100", "+881612345678", "+979123456789", "+447911123456", "911", "12125550199"):
        assert "Hangup(21)" in _fate(plan, refused) and "Dial" not in _fate(plan, refused), refused
    assert _fate(plan, "2002") == "Goto(cc-agents,2002,1)"
    gb = dataclasses.replace(example(), dialout=m.DialOut(countries=("GB", "FR"), deny=("+4487",)))
    plan = _transfer_plan(gb)
    assert "Dial" in _fate(plan, "+447911123456") and "Dial" in _fate(plan, "+33612345678")
    assert "Hangup(21)" in _fate(plan, "+448712345678") and "Hangup(21)" in _fate(plan, "+12125550199")


def test_a_callback_to_an_untrusted_caller_id_must_collect_the_number(tmp_path: Path) -> None:
    flows = """
        trunks:
          spoofable: {host: sip.other.example, match: [198.51.100.7], trust_caller_id: false}
          carrier: {host: sip.carrier.example, match: [203.0.113.0/24]}
        numbers:
          - {number: "+15550002000", flow: cb, trunk: spoofable}
          - {number: "+15550003000", flow: ok, trunk: carrier}
        flows:
          cb:
            start: first
            nodes:
              first: {type: goto_flow, flow: back}
          back:
            start: ask
            nodes:
              ask: {type: callback, queue: sales}
          ok:
            start: ask
            nodes:
              ask: {type: callback, queue: sales}
        """
    got = problems(tmp_path, flows)
    assert got == [
        "extra.yaml:16: flows.back.nodes.ask: calls back the caller ID, which is not trusted here "
        "(trunk 'spoofable' of +15550002000 does not set trust_caller_id): collect the number first "
        "and name it in number_variable",
    ]  # the flow "ok" is reached from a trusted trunk only
