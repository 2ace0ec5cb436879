"""Pure: the dial-out policy's verdict on a number (transfers, callbacks, campaign contacts).

``decide(config, raw, purpose)`` returns a :class:`Verdict`: allowed or not, a stable ``reason``
code and the number to dial (E.164, or an internal extension). ``check`` raises
``DialOutRefusedError`` instead of returning a refusal. ``dialplan_rules(config)`` gives the
extension patterns the rendered dialplan checks again (defence in depth): denied prefixes refused,
then only the allowed countries' (or ``allow`` prefixes') E.164 numbers dialled.

Reasons, in the order they are checked: ``internal`` (allowed: one of the center's extensions,
transfers only), ``emergency`` (an emergency short code of the center's or an allowed country),
``invalid_number``, ``satellite``, ``premium_rate``, ``shared_cost``, ``number_type`` (any other
type not in ``number_types``, including what phonenumbers cannot classify), ``denied_prefix``,
``country``, ``not_allowed`` (outside the ``allow`` prefixes), and ``allowed``.

No I/O beyond phonenumbers' bundled metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import phonenumbers
from phonenumbers import shortnumberinfo

from callcenter import phone
from callcenter.config import model as m
from callcenter.errors import DialOutRefusedError, InvalidPhoneNumberError
from callcenter.reporting.records import CallEvent

ALLOWED: Final = "allowed"
INTERNAL: Final = "internal"
EMERGENCY: Final = "emergency"
INVALID: Final = "invalid_number"
SATELLITE: Final = "satellite"
PREMIUM_RATE: Final = "premium_rate"
SHARED_COST: Final = "shared_cost"
NUMBER_TYPE: Final = "number_type"
DENIED_PREFIX: Final = "denied_prefix"
COUNTRY: Final = "country"
NOT_ALLOWED: Final = "not_allowed"

# Country calling codes of satellite services (Inmarsat, Iridium/Globalstar/Thuraya ranges).
SATELLITE_CODES: Final = frozenset({870, 881, 882})

_TYPES: Final = {
    phonenumbers.PhoneNumberType.FIXED_LINE: ("fixed_line",),
    phonenumbers.PhoneNumberType.MOBILE: ("mobile",),
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: ("fixed_line", "mobile"),
    phonenumbers.PhoneNumberType.TOLL_FREE: ("toll_free",),
    phonenumbers.PhoneNumberType.PREMIUM_RATE: ("premium_rate",),
    phonenumbers.PhoneNumberType.SHARED_COST: ("shared_cost",),
    phonenumbers.PhoneNumberType.VOIP: ("voip",),
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER: ("personal_number",),
    phonenumbers.PhoneNumberType.PAGER: ("pager",),
    phonenumbers.PhoneNumberType.UAN: ("uan",),
    phonenumbers.PhoneNumberType.VOICEMAIL: ("voicemail",),
}
_MAX_RAW: Final = 64
EVENT_KIND: Final = "dial_out_refused"  # the call event a refusal is logged as


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str
    number: str  # what to dial: E.164 or an internal extension ("" when unreadable)


def countries(config: m.Config) -> tuple[str, ...]:
    """The ISO regions a dialled number may belong to."""
    return config.dialout.countries or (config.center.country.upper(),)


def internal_extensions(config: m.Config) -> frozenset[str]:
    """The center's own extensions (agents' and supervisors' phones)."""
    exts = {a.extension for a in config.agents.values()}
    exts |= {s.extension for s in config.supervisors.values() if s.extension is not None}
    return frozenset(exts)


def decide(config: m.Config, raw: str, purpose: m.DialPurpose) -> Verdict:
    """The policy's verdict on dialling ``raw`` for ``purpose`` (see the module docstring)."""
    policy = config.dialout
    text = raw.strip()
    if len(text) > _MAX_RAW:
        return Verdict(False, INVALID, "")
    if policy.internal and purpose is m.DialPurpose.TRANSFER and text in internal_extensions(config):
        return Verdict(True, INTERNAL, text)
    regions = countries(config)
    if not text.startswith("+") and any(
        shortnumberinfo.is_emergency_number(text, r) for r in {*regions, config.center.country.upper()}
    ):
        return Verdict(False, EMERGENCY, "")
    try:
        e164 = phone.normalize(text, config.center.country)
    except InvalidPhoneNumberError:
        return Verdict(False, INVALID, "")
    number = phonenumbers.parse(e164, None)
    types = _TYPES.get(phonenumbers.number_type(number), ())
    if number.country_code in SATELLITE_CODES:
        types = ("satellite",)
    if not any(t in policy.number_types for t in types):
        if types and types[0] in (SATELLITE, PREMIUM_RATE, SHARED_COST):
            return Verdict(False, types[0], e164)
        return Verdict(False, NUMBER_TYPE, e164)
    if any(e164.startswith(p) for p in policy.deny):
        return Verdict(False, DENIED_PREFIX, e164)
    region = phonenumbers.region_code_for_number(number)
    if not policy.allow and region not in regions and not _shares_code(number.country_code or 0, regions):
        return Verdict(False, COUNTRY, e164)
    if policy.allow and not any(e164.startswith(p) for p in policy.allow):
        return Verdict(False, NOT_ALLOWED, e164)
    return Verdict(True, ALLOWED, e164)


def _shares_code(code: int, regions: tuple[str, ...]) -> bool:
    """A region phonenumbers names differently but dialled under an allowed region's code and
    main country (``GG`` under ``GB``) counts; other members of a shared code (CA under US) don't."""
    return any(phonenumbers.country_code_for_region(r) == code and code not in _SHARED_PLANS for r in regions)


# Calling codes shared by independent countries: the region itself must be allowed.
_SHARED_PLANS: Final = frozenset({1, 7})


def check(config: m.Config, raw: str, purpose: m.DialPurpose) -> str:
    """The number to dial, or ``DialOutRefusedError`` with the policy's reason."""
    verdict = decide(config, raw, purpose)
    if not verdict.allowed:
        raise DialOutRefusedError(
            f"the dial-out policy refuses this {purpose} number ({verdict.reason})",
            number=raw[:_MAX_RAW],
            purpose=str(purpose),
            reason=verdict.reason,
        )
    return verdict.number


def refusal_event(call_id: str, at: float, exc: DialOutRefusedError) -> CallEvent:
    """The call-log event of a refusal: purpose, reason and the number asked for."""
    detail = {"purpose": exc.purpose, "reason": exc.reason, "number": exc.number}
    return CallEvent(call_id, at, EVENT_KIND, detail=detail)


@dataclass(frozen=True, slots=True)
class DialplanRules:
    """Extension patterns for the rendered dial-out check (each begins with ``_``)."""

    deny: tuple[str, ...]  # refused
    allow: tuple[str, ...]  # dialled on the outbound trunk
    internal: tuple[str, ...]  # the center's extensions, reached on its own phones


def dialplan_rules(config: m.Config) -> DialplanRules:
    policy = config.dialout
    deny = tuple(f"_{p}." for p in policy.deny)
    if policy.allow:
        allow = tuple(f"_{p}." for p in policy.allow)
    else:
        codes = sorted({phonenumbers.country_code_for_region(r) for r in countries(config)} - {0})
        allow = tuple(f"_+{c}X." for c in codes)
    internal = tuple(sorted(internal_extensions(config))) if policy.internal else ()
    return DialplanRules(deny, allow, internal)
