"""Secrets in the configuration: PIN hashes, weak secrets and PINs, the YAML's pin_hash and a
trunk's inbound auth rendered into pjsip.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.acd.pin import PinCheck, PinGuard
from callcenter.config import model as m
from callcenter.config import secrets
from callcenter.config.load import load
from callcenter.config.render import render
from tests.centers import problems, write

SALT = bytes(range(16))


def test_pin_hashes_match_only_their_pin() -> None:
    stored = secrets.hash_pin("482917", SALT)
    assert secrets.is_pin_hash(stored) and "482917" not in stored
    assert secrets.pin_matches("482917", stored)
    assert not secrets.pin_matches("482918", stored) and not secrets.pin_matches("", stored)
    assert secrets.hash_pin("482917", bytes(16)) != stored  # salted
    assert secrets.pin_matches("4821", "4821") and not secrets.pin_matches("4822", "4821")
    bad_cost = "scrypt:3:8:1:AAAAAAAAAAAAAAAAAAAAAA:" + "A" * 43  # scrypt refuses N=3: nothing matches
    assert not secrets.pin_matches("1", bad_cost)
    guard = PinGuard(max_failures=2)
    assert guard.check("9001", "000000", stored, 0) is PinCheck.WRONG
    assert guard.check("9001", "482917", stored, 1) is PinCheck.OK


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("change-me-ami", "a placeholder"),
        ("xx-CHANGEME-xx-long", "a placeholder"),
        ("nw-1001-phone", "a placeholder"),
        ("Password1", "a common password"),
        ("k7#Qz", "shorter than 12 characters"),
        ("abababababab", "fewer than 5 different characters"),
        ("v9Lk2-qPz8Wr", None),
    ],
)
def test_password_weakness(value: str, why: str | None) -> None:
    assert secrets.password_weakness(value) == why


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        ("1111", "one digit repeated"),
        ("1234", "a run of digits"),
        ("98765", "a run of digits"),
        ("135791", "a run of digits"),
        ("7890", "a run of digits"),
        ("246810", "counting"),
        ("101112", "counting"),
        ("1212", "a repeated pattern"),
        ("123123", "a repeated pattern"),
        ("2580", "a well-known PIN"),
        ("482917", None),
        ("4821", None),
    ],
)
def test_pin_weakness(pin: str, why: str | None) -> None:
    assert secrets.pin_weakness(pin) == why


def test_pin_hash_in_the_yaml(tmp_path: Path) -> None:
    stored = secrets.hash_pin("482917", SALT)
    d = write(
        tmp_path,
        f"""
        supervisors:
          - {{id: "9001", name: Sue, endpoint: s1, queues: [sales], pin_hash: "{stored}",
             sip_password: Sp-9x}}
        """,
    )
    config = load(d, prompts_dir=None, env={}).config
    assert config.supervisors["9001"].pin.value == stored
    paths = [path for _, path in secrets.problems(config)]
    assert ("agents", "1001", "pin") in paths  # the base's plain "1234"
    assert ("supervisors", "9001", "pin") not in paths  # a hash is neither plain nor weak
    got = problems(
        tmp_path,
        f"""
        supervisors:
          - {{id: "9001", name: Sue, endpoint: s1, queues: [sales], pin_hash: "scrypt:nope",
             sip_password: Sp-1x}}
          - {{id: "9002", name: Tom, endpoint: s2, queues: [sales], pin: "4821", pin_hash: "{stored}",
             sip_password: Sp-2x}}
        """,
    )
    assert got == [
        "extra.yaml:3: supervisors.9001.pin_hash: expected a PIN hash made by `callcenter pin-hash` "
        "(scrypt:...), found 'scrypt:nope'",
        "extra.yaml:5: supervisors.9002.pin: give pin or pin_hash, not both",
    ]


def test_inbound_auth_is_rendered_for_the_trunk(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        """
        trunks:
          carrier:
            host: sip.carrier.example
            match: [203.0.113.0/24]
            inbound_auth: {username: carrier-in, password: "${CC_CARRIER_IN}"}
        """,
    )
    config = load(d, prompts_dir=None, env={"CC_CARRIER_IN": "Kp9-vQ2z-Lm7x"}).config
    trunk = config.trunks["carrier"]
    assert trunk.inbound_auth == m.TrunkAuth(
        "carrier-in", m.Secret("Kp9-vQ2z-Lm7x", "CC_CARRIER_IN", in_yaml=False)
    )
    pjsip = next(f.text for f in render(config) if f.name == "pjsip.conf")
    endpoint = pjsip[pjsip.index("[carrier]\ntype = endpoint") :].split("\n\n")[0]
    assert "identify_by = ip" in endpoint and "auth = carrier-inbound-auth" in endpoint
    section = pjsip[pjsip.index("[carrier-inbound-auth]") :].split("\n\n")[0]
    assert section.splitlines()[1:] == [
        "type = auth",
        "auth_type = userpass",
        "username = carrier-in",
        "password = Kp9-vQ2z-Lm7x",
    ]
    weak = load(d, prompts_dir=None, env={"CC_CARRIER_IN": "x"}).config
    assert (
        "weak secret: shorter than 12 characters (from ${CC_CARRIER_IN}); "
        "set a strong one (e.g. from ${ENV_VAR})",
        ("trunks", "carrier", "inbound_auth", "password"),
    ) in list(secrets.problems(weak))
