"""Phone numbers: E.164 normalisation and zones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.errors import InvalidPhoneNumberError
from callcenter.phone import derived_zones, is_e164, normalize, zones_for


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(212) 555-0100", "US", "+12125550100"),
        ("212.555.0100", "us", "+12125550100"),
        ("+1 415 555 0100", None, "+14155550100"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("+44 20 7946 0018", "US", "+442079460018"),
        ("0033 1 23 45 67 89", "GB", "+33123456789"),
        ("01 23 45 67 89", "FR", "+33123456789"),
    ],
)
def test_normalize(raw: str, region: str | None, expected: str) -> None:
    assert normalize(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "US", "not_a_number"),
        ("hello", "US", "not_a_number"),
        ("212 555 0100", None, "invalid_country"),
        ("12", "US", "too_short"),
        ("+1 555 555 1234", None, "invalid"),
        ("+12125550100\r\nAction: Hangup", None, "unsafe"),
        ("+1" + "2" * 80, None, "unsafe"),
    ],
)
def test_normalize_refuses(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumberError) as info:
        normalize(raw, region)
    assert info.value.reason == reason
    assert info.value.raw == raw
    assert info.value.code == "invalid_phone_number"


@given(st.text(max_size=40))
@settings(max_examples=200)
def test_normalize_total(raw: str) -> None:
    """Anything either normalises to safe E.164 or raises the one domain error."""
    try:
        out = normalize(raw, "US")
    except InvalidPhoneNumberError:
        return
    assert is_e164(out)


def test_zones() -> None:
    assert derived_zones("+12125550100") == ("America/New_York",)
    assert zones_for("+14155550100", "Europe/Paris") == ("America/Los_Angeles",)
    assert zones_for("+442079460018", "UTC") == ("Europe/London",)
    # toll-free: anywhere in the NANP; not derivable, the campaign's zone is used
    assert derived_zones("+18005551212") == ()
    assert zones_for("+18005551212", "America/Chicago") == ("America/Chicago",)
    assert zones_for("garbage", "UTC") == ("UTC",)


def test_e164_shape() -> None:
    assert is_e164("+12125550100")
    assert not is_e164("12125550100")
    assert not is_e164("+0123456789")
    assert not is_e164("+1")
