"""Contact CSV import (bad rows reported by line) and the do-not-call list."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.outbound.contacts import DncList, parse_contacts, parse_dnc

CSV = (
    "id,Name,Phone,timezone,plan\r\n"
    "c1,Ann,(212) 555-0100,,gold\r\n"
    "c2,Bob,not a number,,silver\r\n"
    'c3,"Carol, Jr.",415-555-0101,,"multi\nline"\r\n'
    "c4,Dan,212 555 0100,,dup\r\n"
    "c5,Eve,+44 20 7946 0018,Europe/Nowhere,x\r\n"
    "c6,Fay,+44 20 7946 0019,Europe/London,x,extra\r\n"
    "\r\n"
    "c7,Gus,+1 800 555 1212,,y\r\n"
    "c1,Hal,+1 312 555 0102,,dup id\r\n"
    "c8,Ivy,+1 312 555 0103,America/Chicago,z\r\n"
)


def test_import_reports_bad_rows_by_line() -> None:
    result = parse_contacts(CSV, default_region="US", default_zone="America/Denver")
    keys = [c.key for c in result.contacts]
    assert keys == ["c1", "c3", "c7", "c8"]
    problems = {(p.line, p.reason) for p in result.problems}
    assert problems == {
        (3, "not_a_number"),
        (6, "duplicate"),  # the same number as line 2 (line 4-5 is one quoted record)
        (7, "bad_timezone"),
        (8, "columns"),
        (11, "duplicate"),  # id c1 again
    }
    by_key = {c.key: c for c in result.contacts}
    assert by_key["c1"].phone == "+12125550100"
    assert by_key["c1"].zones == ("America/New_York",)
    assert by_key["c1"].data == {"plan": "gold"}
    assert by_key["c1"].line == 2
    assert by_key["c3"].name == "Carol, Jr."
    assert by_key["c3"].line == 4
    assert by_key["c3"].data["plan"] == "multi\nline"
    assert by_key["c7"].zones == ("America/Denver",)  # toll-free: the campaign's zone
    assert by_key["c8"].zones == ("America/Chicago",)
    assert "line 3, column phone" in str(next(p for p in result.problems if p.line == 3))


def test_import_without_id_column_keys_by_number_and_skips_dnc() -> None:
    text = "phone\n2125550100\n2125550101\n"
    dnc = DncList(frozenset({"+12125550101"}))
    result = parse_contacts(text, default_region="US", default_zone="UTC", dnc=dnc)
    assert [c.key for c in result.contacts] == ["+12125550100"]
    assert result.on_dnc == (3,)
    assert result.problems == ()


def test_import_header_problems() -> None:
    assert parse_contacts("", default_region="US", default_zone="UTC").problems[0].reason == "empty"
    r = parse_contacts("name,email\nA,a@x\n", default_region="US", default_zone="UTC")
    assert r.contacts == ()
    assert r.problems[0].reason == "no_phone_column"


def test_dnc_file() -> None:
    text = (
        "# internal DNC\nphone\n+12125550100\n(415) 555-0101, asked 2026-01-02\n"
        "\nbogus\n  +44 20 7946 0018 # uk\n"
    )
    dnc, problems = parse_dnc(text, default_region="US")
    assert dnc.numbers == {"+12125550100", "+14155550101", "+442079460018"}
    assert [(p.line, p.reason) for p in problems] == [(6, "not_a_number")]
    assert "+12125550100" in dnc
    assert len(dnc) == 3


@given(st.text(max_size=300))
@settings(max_examples=150)
def test_import_never_raises(text: str) -> None:
    result = parse_contacts("phone,name\n" + text, default_region="US", default_zone="UTC")
    for contact in result.contacts:
        assert contact.phone.startswith("+")
        assert contact.zones


def test_import_refuses_numbers_outside_the_dial_out_policy() -> None:
    text = "phone,name\n+12125550199,A\n+19005550100,B\n+881612345678,C\n"
    refusals = {"+19005550100": "premium_rate", "+881612345678": "satellite"}
    result = parse_contacts(text, default_region="US", default_zone="UTC", refuse=refusals.get)
    assert [c.phone for c in result.contacts] == ["+12125550199"]
    assert [(p.line, p.reason) for p in result.problems] == [(3, "dial_out_refused"), (4, "dial_out_refused")]
    assert "premium_rate" in result.problems[0].message
