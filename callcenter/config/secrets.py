"""Pure: secrets in the configuration: the stored form of a PIN, and which secrets are too weak.

``hash_pin(pin, salt)`` makes the ``pin_hash`` the YAML stores (``scrypt:N:r:p:SALT:HASH``,
base64url; ``callcenter pin-hash`` draws the salt and prints one); ``pin_matches`` compares what was
typed with a stored PIN, digits or hash, in constant time.

``problems(config)`` lists every secret ``callcenter validate`` refuses (the demo passes
``--allow-demo-secrets``), as ``(message, path)`` for the loader's locations; never the secret
itself. Refused: placeholders (anything holding ``change-me``, a phone password like
``nw-1001-phone``), common or short passwords (under 12 characters, fewer than 5 different
characters), PINs written in the YAML in plain text (literally or as a ``${ENV:-default}`` the
environment did not override: use ``pin_hash`` or ``${ENV}``), and weak PINs: one digit repeated,
a run up or down the keypad's digits (``1234``, ``9876``, ``135791``), counting (``246810``), a
repeated pattern (``1212``) or a well-known one (``2580``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterator
from typing import Final

from callcenter.config import model as m

SCRYPT_N: Final = 2**14  # 16 MiB with r=8: about 50 ms a check, rare (a login, a listen-in)
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
PIN_HASH_RE: Final = re.compile(
    r"scrypt:([0-9]{1,8}):([0-9]{1,3}):([0-9]{1,3}):([A-Za-z0-9_-]{16,88}):([A-Za-z0-9_-]{32,88})"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_pin(pin: str, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The stored form of ``pin``: scrypt with ``salt`` (16 random bytes or more)."""
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * 1024 * 1024)
    return f"scrypt:{n}:{r}:{p}:{_b64(salt)}:{_b64(digest)}"


def is_pin_hash(stored: str) -> bool:
    return PIN_HASH_RE.fullmatch(stored) is not None


def pin_matches(typed: str, stored: str) -> bool:
    """``typed`` against a stored PIN (digits or :func:`hash_pin`'s form), in constant time."""
    found = PIN_HASH_RE.fullmatch(stored)
    if found is None:
        return hmac.compare_digest(typed.encode(), stored.encode())
    n, r, p = (int(found.group(i)) for i in (1, 2, 3))
    try:
        salt, expected = _unb64(found.group(4)), _unb64(found.group(5))
        digest = hashlib.scrypt(
            typed.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=256 * 1024 * 1024
        )
    except (ValueError, binascii.Error):  # parameters scrypt refuses: nothing can match
        return False
    return hmac.compare_digest(digest, expected)


MIN_PASSWORD: Final = 12
_PLACEHOLDER_RE: Final = re.compile(r"change-?me|[a-z]+-[0-9]+-phone", re.IGNORECASE)
_COMMON: Final = frozenset(
    {"password", "passw0rd", "secret", "admin", "asterisk", "callcenter", "changeme", "letmein", "qwerty"}
)
_KNOWN_PINS: Final = frozenset({"2580", "0852", "1004", "2000", "1122", "6969", "5683"})


def password_weakness(value: str) -> str | None:
    """Why a password or secret is refused, or ``None``."""
    if _PLACEHOLDER_RE.search(value):
        return "a placeholder"
    if value.lower() in _COMMON or value.lower().rstrip("0123456789!") in _COMMON:
        return "a common password"
    if len(value) < MIN_PASSWORD:
        return f"shorter than {MIN_PASSWORD} characters"
    if len(set(value)) < 5:
        return "fewer than 5 different characters"
    return None


def pin_weakness(pin: str) -> str | None:
    """Why a PIN (digits) is refused as easy to guess, or ``None``."""
    digits = [int(c) for c in pin]
    if len(set(digits)) == 1:
        return "one digit repeated"
    steps = {(b - a) % 10 for a, b in zip(digits, digits[1:], strict=False)}
    if len(steps) == 1 and steps <= {1, 2, 8, 9}:
        return "a run of digits"
    for first in range(1000):  # 246810 = 2, 4, 6, 8, 10; 101112 = 10, 11, 12
        if not pin.startswith(str(first)):
            continue
        for step in (1, 2, 3, -1):
            counted, n = "", first
            while len(counted) < len(pin) and n >= 0:
                counted, n = counted + str(n), n + step
            if counted == pin:
                return "counting"
    for period in range(1, len(pin) // 2 + 1):
        if len(pin) % period == 0 and pin == pin[:period] * (len(pin) // period):
            return "a repeated pattern"
    if pin in _KNOWN_PINS:
        return "a well-known PIN"
    return None


def problems(config: m.Config) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every refused secret: (what is wrong, the config path of the key)."""

    def password(secret: m.Secret | None, path: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...]]]:
        if secret is None:
            return
        why = password_weakness(secret.value)
        if why is not None:
            source = f" (from ${{{secret.env}}})" if secret.env and not secret.in_yaml else ""
            yield f"weak secret: {why}{source}; set a strong one (e.g. from ${{ENV_VAR}})", path

    def pin(secret: m.Secret, path: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...]]]:
        if is_pin_hash(secret.value):
            return
        if secret.in_yaml:
            yield "PIN in plain text in the YAML: store pin_hash (callcenter pin-hash) or ${ENV_VAR}", path
        why = pin_weakness(secret.value)
        if why is not None:
            yield f"weak PIN: {why}", path

    yield from password(config.asterisk.ami.secret, ("asterisk", "ami", "secret"))
    if config.asterisk.ami_apply is not None:
        yield from password(config.asterisk.ami_apply.secret, ("asterisk", "ami_apply", "secret"))
    for t in config.trunks.values():
        if t.auth is not None:
            yield from password(t.auth.password, ("trunks", t.id, "auth", "password"))
        if t.inbound_auth is not None:
            yield from password(t.inbound_auth.password, ("trunks", t.id, "inbound_auth", "password"))
    for a in config.agents.values():
        yield from pin(a.pin, ("agents", a.id, "pin"))
        yield from password(a.sip_password, ("agents", a.id, "sip_password"))
    for s in config.supervisors.values():
        yield from pin(s.pin, ("supervisors", s.id, "pin"))
        yield from password(s.sip_password, ("supervisors", s.id, "sip_password"))
