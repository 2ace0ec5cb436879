"""The sans-IO AMI codec: every real capture parsed three ways, round trips, hostile bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.asterisk.ami import AMIParser, Greeting, Message, encode, encode_action, encode_greeting
from callcenter.asterisk.events import (
    ChanSpyStart,
    CoreShowChannelsComplete,
    DialEnd,
    DTMFEnd,
    Hangup,
    OriginateReason,
    OriginateResponse,
    parse_event,
    parse_response,
)
from callcenter.errors import AMIProtocolError, UnsafeValueError
from tests.traces import TRACES, trace_streams

AMI_TRACES = sorted(TRACES.glob("*.ami.txt"))


def expected_blocks(data: bytes) -> int:
    return data.count(b"\r\n\r\n")


def parse_all(data: bytes, *, step: int | None = None, greeting: bool = True) -> list[Greeting | Message]:
    parser = AMIParser(greeting=greeting)
    out: list[Greeting | Message] = []
    if step is None:
        out += parser.feed(data)
    else:
        for i in range(0, len(data), step):
            out += parser.feed(data[i : i + step])
    out += parser.feed(b"")
    return out


@pytest.mark.parametrize("path", AMI_TRACES, ids=lambda p: p.name)
def test_every_capture_whole_bytewise_and_with_trailing_bytes(path: Path) -> None:
    received, sent = trace_streams(path)
    whole = parse_all(received)
    assert whole[0] == Greeting("Asterisk Call Manager/11.0.0")
    messages = whole[1:]
    assert len(messages) == expected_blocks(received)  # every message accounted for
    assert all(isinstance(m, Message) and m.kind in ("response", "event") for m in messages)
    assert parse_all(received, step=1) == whole
    assert parse_all(received, step=7) == whole
    # Re-encoding gives the same bytes back (Asterisk writes "Name: value\r\n" exactly).
    assert b"".join(m.encode() for m in messages if isinstance(m, Message)) == received.split(b"\r\n", 1)[1]
    # Trailing bytes: an unfinished message stays buffered, then EOF is a protocol error.
    parser = AMIParser()
    assert parser.feed(received + b"Event: Newchannel\r\nChannel: x") == whole
    assert parser.buffered > 0
    with pytest.raises(AMIProtocolError):
        parser.feed(b"")
    # The client side, as the simulated PBX parses it.
    actions = parse_all(sent, greeting=False)
    assert len(actions) == expected_blocks(sent)
    assert all(isinstance(a, Message) and a.is_action for a in actions)
    assert parse_all(sent, step=1, greeting=False) == actions


def test_injected_crlf_is_split_into_headers_as_asterisk_does() -> None:
    _, sent = trace_streams(TRACES / "hold-rona-bridge-abandon.ami.txt")
    actions = [a for a in parse_all(sent, greeting=False) if isinstance(a, Message)]
    inject = next(a for a in actions if a.get("ActionID") == "inject")
    assert inject.name == "Originate"
    assert inject.get_all("Action") == ["Originate", "Hangup"]
    assert inject.get("Variable") == "CALLER=x"
    with pytest.raises(UnsafeValueError):
        encode_action("Originate", [("Variable", "CALLER=x\r\nAction: Hangup")], action_id="inject")


def test_command_output_and_repeated_headers() -> None:
    received, _ = trace_streams(TRACES / "hold-rona-bridge-abandon.ami.txt")
    messages = [m for m in parse_all(received) if isinstance(m, Message)]
    cmd = next(m for m in messages if m.get("ActionID") == "cmd-1")
    response = parse_response(cmd)
    assert response.success and response.output == [""]
    err = parse_response(next(m for m in messages if m.get("ActionID") == "setvar-bad"))
    assert not err.success and err.text == "No such channel"
    msg = Message([("Event", "X"), ("Variable", "A=1"), ("variable", "B=2")])
    assert msg.get_all("VARIABLE") == ["A=1", "B=2"] and msg.get("Variable") == "A=1"
    assert msg.get("missing", "d") == "d" and "variable" in msg and msg["EVENT"] == "X"


def test_typed_events_from_the_captures() -> None:
    seen: dict[str, object] = {}
    for path in AMI_TRACES:
        received, _ = trace_streams(path)
        for m in parse_all(received):
            if isinstance(m, Message) and m.is_event:
                view = parse_event(m)
                if view is not None:
                    seen.setdefault(f"{type(view).__name__}:{getattr(view, 'reason', '')}", view)
    rona = next(v for k, v in seen.items() if k == "OriginateResponse:3")
    assert isinstance(rona, OriginateResponse) and not rona.succeeded
    assert rona.reason_code is OriginateReason.NO_ANSWER
    assert {OriginateReason(int(k.split(":")[1])) for k in seen if k.startswith("OriginateResponse:")} >= {
        OriginateReason.FAILURE,
        OriginateReason.NO_ANSWER,
        OriginateReason.BUSY,
        OriginateReason.CONGESTION,
    }
    names = {k.split(":")[0] for k in seen}
    for expected in (
        "Newchannel",
        "Newstate",
        "Hangup",
        "HangupRequest",
        "SoftHangupRequest",
        "BridgeCreate",
        "BridgeEnter",
        "BridgeLeave",
        "BridgeDestroy",
        "DialBegin",
        "DialEnd",
        "MusicOnHoldStart",
        "MusicOnHoldStop",
        "MixMonitorStart",
        "DTMFBegin",
        "DTMFEnd",
        "VarSet",
        "Newexten",
        "ChanSpyStart",
        "ChanSpyStop",
        "CoreShowChannel",
        "CoreShowChannelsComplete",
        "AGIExecStart",
        "AGIExecEnd",
    ):
        assert expected in names, expected
    hangup = seen["Hangup:"]
    assert isinstance(hangup, Hangup) and hangup.channel.channel and hangup.cause is not None
    spy = seen["ChanSpyStart:"]
    assert isinstance(spy, ChanSpyStart) and spy.spyee is not None
    assert spy.spyer.channel.startswith("Local/3001@supervisors")
    dtmf = seen["DTMFEnd:"]
    assert isinstance(dtmf, DTMFEnd) and dtmf.digit and dtmf.duration_ms is not None
    dial_end = seen["DialEnd:"]
    assert isinstance(dial_end, DialEnd) and dial_end.dial_status in (
        "ANSWER",
        "BUSY",
        "NOANSWER",
        "CONGESTION",
    )
    complete = seen["CoreShowChannelsComplete:"]
    assert isinstance(complete, CoreShowChannelsComplete) and complete.list_items is not None


def test_framing_edge_cases() -> None:
    # A bare LF ends a line too; a lone CR is data; blank lines between messages are skipped.
    parser = AMIParser(greeting=False)
    out = parser.feed(b"\r\n\nAction: Ping\nActionID: 1\n\nAction: X\r\nValue: a\rb\r\n\r\n\r\n")
    assert out == [
        Message([("Action", "Ping"), ("ActionID", "1")]),
        Message([("Action", "X"), ("Value", "a\rb")]),
    ]
    # A CR at the end of one chunk and its LF in the next.
    parser = AMIParser(greeting=False)
    assert parser.feed(b"Action: Ping\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\n") == [Message([("Action", "Ping")])]
    assert parser.feed(b"") == []
    # No space, several spaces, an empty value, a colon in the value.
    m = AMIParser(greeting=False).feed(b"A:b\r\nC:  d\r\nE: \r\nF: g: h\r\n\r\n")[0]
    assert isinstance(m, Message)
    assert m.headers == (("A", "b"), ("C", " d"), ("E", ""), ("F", "g: h"))
    assert m.kind is None and m.name is None


def test_kind_and_action_id_without_splitting() -> None:
    m = AMIParser(greeting=False).feed(b"ActionID: 7\r\nAction: Ping\r\n\r\n")[0]
    assert isinstance(m, Message) and m.action_id == "7" and m.kind == "action" and m.name == "Ping"
    m2 = AMIParser(greeting=False).feed(b"Response: Success\r\nactionid: 9\r\nActionID: 10\r\n\r\n")[0]
    assert isinstance(m2, Message) and m2.action_id == "9" and m2.is_response
    m3 = AMIParser(greeting=False).feed(b"Channel: x\r\nEvent: Foo\r\n\r\n")[0]
    assert isinstance(m3, Message) and m3.is_event and m3.name == "Foo" and m3.action_id is None


def test_size_cap_and_bad_lines() -> None:
    parser = AMIParser(max_message_size=64, greeting=False)
    with pytest.raises(AMIProtocolError):
        parser.feed(b"Event: X\r\nValue: " + b"x" * 100)
    with pytest.raises(AMIProtocolError):
        parser.feed(b"Event: Y\r\n\r\n")  # dead after an error
    parser = AMIParser(max_message_size=64, greeting=False)
    with pytest.raises(AMIProtocolError):
        parser.feed(b"Event: X\r\nValue: " + b"x" * 100 + b"\r\n\r\n")
    with pytest.raises(AMIProtocolError):
        AMIParser(greeting=False).feed(b"Event: X\r\nno colon here\r\n\r\n")
    with pytest.raises(AMIProtocolError):
        AMIParser(max_message_size=32).feed(b"Asterisk Call Manager/" + b"9" * 64)
    parser = AMIParser()
    parser.feed(b"Asterisk Call Ma")
    with pytest.raises(AMIProtocolError):
        parser.feed(b"")
    with pytest.raises(UnsafeValueError):
        encode([("Bad:Name", "v")])
    with pytest.raises(UnsafeValueError):
        encode([("", "v")])
    with pytest.raises(UnsafeValueError):
        encode([("Name", "nul\x00")])
    assert encode_greeting() == b"Asterisk Call Manager/11.0.0\r\n"


# --------------------------------------------------------------------------- properties
names_st = st.text(
    alphabet=st.characters(blacklist_characters=":\r\n\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)
values_st = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=40
)
headers_st = st.lists(st.tuples(names_st, values_st), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(headers_st, min_size=1, max_size=5), st.integers(min_value=1, max_value=50))
def test_round_trip(messages: list[list[tuple[str, str]]], step: int) -> None:
    wire = b"".join(encode(h) for h in messages)
    expected = [Message(h) for h in messages]
    parsed = parse_all(wire, greeting=False)
    # A name made only of blanks would read back the same; headers compare exactly.
    assert parsed == expected
    assert parse_all(wire, step=step, greeting=False) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_raise_only_the_protocol_error(data: bytes, greeting: bool) -> None:
    parser = AMIParser(max_message_size=128, greeting=greeting)
    try:
        for item in parser.feed(data) + parser.feed(b""):
            if isinstance(item, Message):
                _ = (item.headers, item.kind, item.name, item.action_id)
    except AMIProtocolError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(headers_st, min_size=1, max_size=5), st.integers(min_value=1, max_value=50), st.booleans())
def test_bare_lf_framing_parses_the_same(
    messages: list[list[tuple[str, str]]], step: int, mixed: bool
) -> None:
    """Asterisk accepts a bare LF as a line end; the general path must agree with the fast one."""
    wires = [encode(h) for h in messages]
    lf = [w.replace(b"\r\n", b"\n") if (i % 2 == 0 or not mixed) else w for i, w in enumerate(wires)]
    expected = [Message(h) for h in messages]
    assert parse_all(b"".join(lf), step=step, greeting=False) == expected
    assert parse_all(b"".join(wires), greeting=False) == expected


@pytest.mark.parametrize(
    "wire",
    [
        b"no colon\r\nEvent: X\r\n\r\n",
        b"Event: X\r\nno colon\r\n\r\n",
        b"Event: X\r\n\r\nEvent: Y\r\nbad\r\n\r\nEvent: Z\r\n\r\n",
        b"Event: X\nno colon\n\n",
    ],
)
def test_a_line_without_colon_is_refused_on_both_paths(wire: bytes) -> None:
    with pytest.raises(AMIProtocolError, match="without a colon"):
        AMIParser(greeting=False).feed(wire)


@settings(max_examples=200, deadline=None)
@given(headers_st, st.lists(names_st, max_size=4), st.booleans())
def test_lookups_on_the_text_agree_with_the_headers(
    headers: list[tuple[str, str]], others: list[str], lf: bool
) -> None:
    """A parsed message answers get/in/[]/action_id from its text; a built one from its headers."""
    wire = encode(headers)
    parsed = parse_all(wire.replace(b"\r\n", b"\n") if lf else wire, greeting=False)[0]
    built = Message(headers)
    assert isinstance(parsed, Message)
    for name in [n for n, _ in headers] + others + ["ActionID", "actionid", "x:y", "a\nb"]:
        for variant in (name, name.upper(), name.lower()):
            assert parsed.get(variant) == built.get(variant), variant
            assert (variant in parsed) == (variant in built)
    assert parsed.action_id == built.action_id
    assert (parsed.kind, parsed.name) == (built.kind, built.name)
    assert parsed == built
