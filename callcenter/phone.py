"""Pure: phone numbers: E.164 normalisation and the timezone(s) of a number.

``normalize(raw, default_region)`` parses what a person typed (``(212) 555-0100``, ``+44 20 ...``,
``00 33 1 ...``) with Google's libphonenumber port (``phonenumbers``) and returns the E.164 form
(``+12125550100``), or raises ``InvalidPhoneNumberError`` with the reason (``not_a_number``,
``invalid_country``, ``too_short``, ``too_long``, ``invalid``, ``unsafe``).

``zones_for(e164, default)`` gives the IANA timezones a calling window must hold in. libphonenumber
knows the zones of a geographic number (a US area code, a UK geographic range); a number that maps to
a single zone, or to a few zones (US area codes that straddle a zone line), is *derivable*: the
calling window must then be open in every one of them (the strictest reading, as the US rules ask).
A number it cannot place (``Etc/Unknown``) or that maps to many zones (toll-free, some mobiles,
countries that span a continent) falls back to the campaign's zone.

No I/O beyond the libraries' own bundled metadata.
"""

from __future__ import annotations

from typing import Final

import phonenumbers
from phonenumbers import timezone as pn_timezone

from callcenter.errors import InvalidPhoneNumberError

MAX_DERIVED_ZONES: Final = 3
"""A number mapping to more zones than this is treated as not locatable (use the campaign's zone)."""

UNKNOWN_ZONE: Final = "Etc/Unknown"

_PARSE_REASONS: Final = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "invalid_country",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not_a_number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too_short",
    phonenumbers.NumberParseException.TOO_LONG: "too_long",
}

_MAX_RAW_LENGTH: Final = 64


def normalize(raw: str, default_region: str | None = None) -> str:
    """Return ``raw`` as an E.164 string, or raise ``InvalidPhoneNumberError``.

    ``default_region`` (ISO 3166 alpha-2, e.g. ``"US"``) is used for numbers written without a
    country code; without it such numbers are refused (``invalid_country``)."""
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumberError("empty phone number", raw=raw, reason="not_a_number")
    if len(text) > _MAX_RAW_LENGTH or any(ch in text for ch in "\r\n\x00"):
        raise InvalidPhoneNumberError(
            "phone number has unsafe characters or length", raw=raw, reason="unsafe"
        )
    region = default_region.upper() if default_region else None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not_a_number")
        raise InvalidPhoneNumberError(f"cannot parse {text!r}: {reason}", raw=raw, reason=reason) from exc
    if not phonenumbers.is_possible_number(number):
        result = phonenumbers.is_possible_number_with_reason(number)
        reason = {
            phonenumbers.ValidationResult.TOO_SHORT: "too_short",
            phonenumbers.ValidationResult.TOO_LONG: "too_long",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "invalid_country",
        }.get(result, "invalid")
        raise InvalidPhoneNumberError(f"{text!r} is not a possible number: {reason}", raw=raw, reason=reason)
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumberError(f"{text!r} is not a valid number", raw=raw, reason="invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_e164(value: str) -> bool:
    """True if ``value`` looks like E.164: ``+`` then 8 to 15 digits, the first not 0."""
    return 8 <= len(value) - 1 <= 15 and value.startswith("+") and value[1:].isdigit() and value[1] != "0"


def derived_zones(e164: str) -> tuple[str, ...]:
    """The zones libphonenumber places ``e164`` in, or ``()`` when it cannot (see module docstring)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in pn_timezone.time_zones_for_number(number) if z != UNKNOWN_ZONE)
    if not zones or len(zones) > MAX_DERIVED_ZONES:
        return ()
    return zones


def zones_for(e164: str, default: str) -> tuple[str, ...]:
    """The zones a calling window must hold in for ``e164``: derived ones, else ``(default,)``."""
    return derived_zones(e164) or (default,)
