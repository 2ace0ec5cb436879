"""The sans-IO FastAGI codec: real captures three ways, quoting, caps, EOF, hostile bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.asterisk.agi import (
    HANGUP_LINE,
    AGIEnvironment,
    AGIParser,
    AGIReply,
    CommandReader,
    HangupNotice,
    encode_env,
    encode_reply,
    encode_usage_error,
    format_command,
    parse_command,
    parse_reply_line,
    script_name,
)
from callcenter.errors import AGIProtocolError, UnsafeValueError
from tests.traces import TRACES, agi_trace

AGI_TRACES = sorted(TRACES.glob("*.agi.txt"))


def parse_all(data: bytes, step: int | None = None) -> list[object]:
    parser = AGIParser()
    out: list[object] = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        out += parser.feed(chunk)
    out += parser.feed(b"")
    return out


@pytest.mark.parametrize("path", AGI_TRACES, ids=lambda p: p.name)
def test_every_capture_whole_bytewise_and_with_trailing_bytes(path: Path) -> None:
    received, commands = agi_trace(path)
    whole = parse_all(received)
    assert isinstance(whole[0], AGIEnvironment)
    env = whole[0].env
    assert env["agi_network_script"] == "ivr" and whole[0].script == "ivr"
    assert env["agi_accountcode"] == ""
    # Every line accounted for: environment lines, then one item per reply (a 520 takes several).
    body = received.split(b"\n\n", 1)[1]
    replies = whole[1:]
    assert len(env) == received.split(b"\n\n", 1)[0].count(b"\n") + 1
    multi = sum(len(r.lines) - 1 for r in replies if isinstance(r, AGIReply))
    assert len(replies) + multi == body.count(b"\n")
    assert sum(isinstance(r, HangupNotice) for r in replies) == 1
    assert any(isinstance(r, AGIReply) and r.result == "-1" and r.hungup for r in replies)
    assert parse_all(received, step=1) == whole
    assert parse_all(received, step=5) == whole
    # Trailing bytes: half a reply stays buffered; EOF then is a protocol error.
    parser = AGIParser()
    assert parser.feed(received + b"200 resu") == whole
    with pytest.raises(AGIProtocolError):
        parser.feed(b"")
    # Re-encoding: the environment and every reply come back byte for byte.
    rebuilt = encode_env(env) + b"".join(
        HANGUP_LINE if isinstance(r, HangupNotice) else encode_reply(r)
        for r in replies
        if isinstance(r, (AGIReply, HangupNotice))
    )
    assert rebuilt == received
    # The commands the script sent, tokenised as Asterisk does, re-formatted the same way.
    for line in commands:
        words = parse_command(line)
        assert words
        reader = CommandReader()
        assert reader.feed((line + "\n").encode()) == [words]


def test_inbound_capture_details() -> None:
    received, _ = agi_trace(TRACES / "inbound-agi-bridge.agi.txt")
    replies = [r for r in parse_all(received)[1:] if isinstance(r, AGIReply)]
    by_line = {r.lines[0]: r for r in replies}
    assert by_line["200 result=1 (5551230001)"].data == "5551230001"
    assert by_line["200 result=0 endpos=3404"].endpos == 3404
    assert by_line["200 result=35"].result_int == ord("#")
    assert by_line["510 Invalid or unknown command"].code == 510
    usage = next(r for r in replies if r.code == 520)
    assert usage.lines[-1] == "520 End of proper usage." and len(usage.lines) == 4
    assert usage.text == "Invalid command syntax.  Proper usage follows:"


def test_reply_lines() -> None:
    assert parse_reply_line("200 result= (timeout)") == AGIReply(
        200, "", "timeout", None, ("200 result= (timeout)",)
    )
    r = parse_reply_line("200 result=1 (a (b) c) endpos=12")
    assert r.data == "a (b) c" and r.endpos == 12
    assert parse_reply_line("511 Command Not Permitted on a dead channel or intercept routine").hungup
    for bad in ("200 nonsense", "2000 x", "hello", "200-x"):
        with pytest.raises(AGIProtocolError):
            parse_reply_line(bad)
    assert AGIReply.ok("1", data="x y").lines == ("200 result=1 (x y)",)
    assert encode_reply(AGIReply.ok(0, endpos=5)) == b"200 result=0 endpos=5\n"
    wire = encode_usage_error("Usage: GET DATA <file>\nMore.")
    items = AGIParser().feed(encode_env({"agi_network_script": "x"}) + wire)
    assert isinstance(items[1], AGIReply) and items[1].code == 520 and len(items[1].lines) == 4


def test_parse_command_matches_asterisk_parse_args() -> None:
    assert parse_command('SET VARIABLE "CC_SKILL" "billing es"') == [
        "SET",
        "VARIABLE",
        "CC_SKILL",
        "billing es",
    ]
    assert parse_command('STREAM FILE beep ""') == ["STREAM", "FILE", "beep", ""]
    assert parse_command(r'EXEC Dial "a\"b" c\ d') == ["EXEC", "Dial", 'a"b', "c d"]
    assert parse_command('ab"cd ef"gh  \t x\n') == ["abcd efgh", "x"]
    assert parse_command(r'"\\"') == ["\\"]
    assert parse_command("") == []
    assert parse_command("   ") == []


def test_format_command_quotes_and_refuses_crlf() -> None:
    assert format_command("GET VARIABLE", "CALLERID(num)") == b'GET VARIABLE "CALLERID(num)"\n'
    assert format_command("ANSWER") == b"ANSWER\n"
    assert format_command("GET DATA", "beep", 4000, 1) == b'GET DATA "beep" "4000" "1"\n'
    for bad in ("a\rb", "a\nb", "a\x00b"):
        with pytest.raises(UnsafeValueError):
            format_command("SET VARIABLE", "X", bad)
    for bad_command in ("answer", "GET VARIABLE\n", "", "X Y\r"):
        with pytest.raises(UnsafeValueError):
            format_command(bad_command)
    with pytest.raises(UnsafeValueError):
        encode_env({"agi_x": "a\nb"})
    with pytest.raises(UnsafeValueError):
        encode_env({"not_agi": "a"})


def test_caps_and_eof() -> None:
    with pytest.raises(AGIProtocolError):
        AGIParser(max_env_size=100).feed(b"agi_x: " + b"y" * 200 + b"\n")
    with pytest.raises(AGIProtocolError):
        AGIParser(max_env_size=100).feed(b"agi_x: " + b"y" * 200)  # no line end yet
    with pytest.raises(AGIProtocolError):
        AGIParser(max_line=50).feed(b"agi_x: y\n\n200 result=" + b"1" * 100)
    parser = AGIParser()
    parser.feed(b"agi_network: yes\nagi_network_script: ivr\n")
    with pytest.raises(AGIProtocolError):
        parser.feed(b"")  # EOF mid-header
    with pytest.raises(AGIProtocolError):
        parser.feed(b"more")  # dead after an error
    with pytest.raises(AGIProtocolError):
        AGIParser().feed(b"GET / HTTP/1.0\r\n\r\n")
    parser = AGIParser()
    parser.feed(b"agi_x: 1\n\n520-Invalid\nusage\n")
    with pytest.raises(AGIProtocolError):
        parser.feed(b"")  # EOF mid multi-line reply
    with pytest.raises(AGIProtocolError):
        AGIParser(max_reply_lines=3).feed(b"agi_x: 1\n\n520-a\nb\nc\nd\ne\n")
    with pytest.raises(AGIProtocolError):
        CommandReader(max_line=10).feed(b"x" * 20)


def test_script_name() -> None:
    assert script_name({"agi_network_script": "ivr?lang=es"}) == "ivr"
    assert script_name({"agi_request": "agi://127.0.0.1:4573/feature/login"}) == "feature/login"
    assert script_name({}) == ""


# --------------------------------------------------------------------------- properties
text_st = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=30
)
env_st = st.dictionaries(st.from_regex(r"agi_[a-z_0-9]{1,12}", fullmatch=True), text_st, max_size=8)


@settings(max_examples=200, deadline=None)
@given(env_st, st.integers(min_value=1, max_value=40))
def test_env_round_trip(env: dict[str, str], step: int) -> None:
    wire = encode_env(env)
    assert parse_all(wire, step=step) == [AGIEnvironment(env)]


@settings(max_examples=200, deadline=None)
@given(st.lists(text_st, max_size=6))
def test_command_round_trip(args: list[str]) -> None:
    assert parse_command(format_command("EXEC", *args).decode()) == ["EXEC", *args]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"-?[0-9]{0,4}|[0-9*#]{0,6}", fullmatch=True),
            st.none() | text_st,
            st.none() | st.integers(min_value=0, max_value=10**9),
        ),
        max_size=6,
    )
)
def test_reply_round_trip(replies: list[tuple[str, str | None, int | None]]) -> None:
    made = [AGIReply.ok(r, data=d, endpos=e) for r, d, e in replies]
    wire = encode_env({"agi_x": "1"}) + b"".join(encode_reply(r) for r in made)
    parsed = parse_all(wire)[1:]
    for want, got in zip(made, parsed, strict=True):
        assert isinstance(got, AGIReply)
        assert (got.code, got.result, got.endpos, got.lines) == (
            want.code,
            want.result,
            want.endpos,
            want.lines,
        )
        if want.data is not None and want.endpos is None:
            assert got.data == want.data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_the_protocol_error(data: bytes) -> None:
    parser = AGIParser(max_env_size=128, max_line=64)
    try:
        parser.feed(data)
        parser.feed(b"")
    except AGIProtocolError:
        pass
    reader = CommandReader(max_line=64)
    try:
        reader.feed(data)
        reader.feed(b"")
    except AGIProtocolError:
        pass
