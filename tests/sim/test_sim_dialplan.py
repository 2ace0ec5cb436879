"""The simulator's dialplan reader and expression evaluator (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.errors import ConfigError, ValidationError
from callcenter.sim.dialplan import parse
from callcenter.sim.expr import UnknownFunctionError, evaluate, substitute

PLAN = """
[general]
static=yes
[globals]
GREETING=hello
[in]
exten => _1NXX,1,NoOp(pattern ${EXTEN})
 same => n(menu),Playback(beep)
 same => n,Goto(menu)
exten => 1234,1,NoOp(exact wins)
exten => _X.,1,NoOp(catch all)
exten => _12[0-4]!,1,NoOp(class)
include => other
[other]
exten => 99,1,Hangup(17) ; a comment
exten => semi,1,NoOp(a\\;b)
"""


def test_contexts_patterns_labels_and_includes() -> None:
    plan = parse(PLAN)
    assert set(plan.contexts) == {"in", "other"}
    assert plan.globals == {"GREETING": "hello"}
    assert plan.find("in", "1234", 1).data == "exact wins"  # type: ignore[union-attr]
    assert plan.find("in", "1555", 1).data == "pattern ${EXTEN}"  # type: ignore[union-attr]
    assert plan.find("in", "1555", 2).label == "menu"  # type: ignore[union-attr]
    assert plan.resolve_label("in", "1555", "menu") == 2
    assert plan.find("in", "123", 1).data == "class"  # type: ignore[union-attr]
    assert plan.find("in", "55", 1).data == "catch all"  # type: ignore[union-attr]
    assert plan.find("in", "5", 1) is None  # "." needs at least one more character
    assert plan.find("in", "semi", 1).data == "a;b"  # type: ignore[union-attr]  (through the include)
    assert plan.find("other", "99", 1).app == "Hangup"  # type: ignore[union-attr]
    assert plan.find("other", "semi", 1).data == "a;b"  # type: ignore[union-attr]
    assert not plan.exists("nowhere", "s")
    assert not plan.exists("in", "1555", 9)


def test_unknown_application_is_located() -> None:
    with pytest.raises(ConfigError) as err:
        parse("[ctx]\nexten => s,1,NoOp()\n same => n,Frobnicate(1)\n", file="x.conf")
    assert err.value.line == 3 and err.value.file == "x.conf"
    assert "[ctx] s,2" in str(err.value) and "Frobnicate" in str(err.value)


def test_unknown_function_is_located_and_all_problems_reported() -> None:
    with pytest.raises(ValidationError) as err:
        parse("[c]\nexten => s,1,NoOp(${SHELL(rm -rf /)})\n same => n,Nope()\n")
    msgs = [str(p) for p in err.value.problems]
    assert any("SHELL" in m and "[c] s,1" in m for m in msgs)
    assert any("Nope" in m and "[c] s,2" in m for m in msgs)


def test_the_traces_and_rendered_dialplans_parse(traces_dir: Path) -> None:
    for name in ("extensions.conf.used", "extensions.chanspy.conf.used"):
        plan = parse((traces_dir / name).read_text())
        assert plan.exists("hold", "s")


class Env:
    def __init__(self, **vars: str) -> None:
        self.vars = vars

    def variable(self, name: str) -> str:
        return self.vars.get(name, "")

    def function(self, name: str, args: str) -> str:
        if name == "LEN":
            return str(len(args))
        raise UnknownFunctionError(name)


def test_substitution() -> None:
    env = Env(A="hello", B="A", N="12345")
    assert substitute("x${A}y", env) == "xhelloy"
    assert substitute("${${B}}", env) == "hello"
    assert substitute("${N:1:2}", env) == "23"
    assert substitute("${N:-2}", env) == "45"
    assert substitute("${LEN(${A})}", env) == "5"
    assert substitute("$[${LEN(${A})} + 1]", env) == "6"
    assert substitute("no dollars", env) == "no dollars"
    with pytest.raises(UnknownFunctionError):
        substitute("${SHELL(ls)}", env)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ('"FAILURE" = "FAILURE"', "1"),
        ('"" != ""', "0"),
        ('"sales" != ""', "1"),
        ("2 < 10", "1"),
        ('"2" < "10"', "1"),
        ("abc < abd", "1"),
        ("1 & 0", "0"),
        ("0 | 7", "7"),
        ("3 * (2 + 1)", "9"),
        ("7 / 2", "3"),
        ("7 % 4", "3"),
        ("!0", "1"),
        ("1 ? yes :: no", "yes"),
        ("0 ? yes :: no", "no"),
        ("12345 =~ 123", "3"),
        ("", ""),
    ],
)
def test_expressions(expr: str, value: str) -> None:
    assert evaluate(expr) == value


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes_the_evaluator(text: str) -> None:
    evaluate(text)
    substitute(text.replace("${", "$"), Env())


@settings(max_examples=100, deadline=None)
@given(st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_integer_comparisons_match_python(a: int, b: int) -> None:
    assert evaluate(f"{a} < {b}") == ("1" if a < b else "0")
    assert evaluate(f"{a} = {b}") == ("1" if a == b else "0")
    assert evaluate(f"{a} + {b}") == str(a + b)
