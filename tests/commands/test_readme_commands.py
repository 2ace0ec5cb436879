"""The README's commands and the command line agree: every ``callcenter ...`` the README shows
parses as written (each alternative, with and without its optional parts), and those that can run
here without a PBX or a running controller run, as typed, and exit as the README says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.cli import build_parser
from tests.centers import REPO

pytestmark = pytest.mark.timeout(900)  # a few dozen commands, each in a new process

README = (REPO / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    """Every inline code span that is a ``callcenter`` command line, whitespace normalised."""
    spans = re.findall(r"`(callcenter [^`]+)`", README)
    return [" ".join(s.split()) for s in spans]


def _parse(template: str) -> list[object]:
    """Words and optional groups (nested lists) of ``template``."""
    tokens = re.findall(r"\[|\]|[^\s\[\]]+", template)
    stack: list[list[object]] = [[]]
    for tok in tokens:
        if tok == "[":
            stack.append([])
        elif tok == "]":
            group = stack.pop()
            stack[-1].append(group)
        elif tok != "...":
            stack[-1].append(tok)
    assert len(stack) == 1, f"unbalanced brackets in the README: {template}"
    return stack[0]


def _words(items: list[object], *, optional: bool) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, list):
            if optional:
                out.extend(_words(item, optional=True))
        else:
            out.append(str(item))
    return out


def expansions(template: str) -> list[list[str]]:
    """The command with and without its optional parts, once per alternative of ``a|b|c``."""
    items = _parse(template)
    out: list[list[str]] = []
    for optional in (False, True):
        words = _words(items, optional=optional)[1:]  # without "callcenter"
        n = max((len(w.split("|")) for w in words), default=1)
        for i in range(n):
            argv = []
            for w in words:
                alts = w.split("|")
                argv.append(alts[min(i, len(alts) - 1)])
            if argv not in out:
                out.append(argv)
    return out


def concrete(argv: list[str], tmp: Path) -> list[str]:
    """Placeholders replaced by values that exist here."""
    campaign = bool(argv) and argv[0] == "campaign"
    values = {
        "NAME": "readme-ops",
        "ROLE": "admin",
        "Q": "sales",
        "A": "1001",
        "ID": "renewals" if campaign else "1001",
        "REASON": "break",
        "ZONE": "America/New_York",
        "DIR": str(tmp / "out") if "--out" in argv else str(REPO / "dialplans"),
        "FILE.csv": str(REPO / "dialplans" / "campaigns" / "renewals.csv"),
        "FILE": str(tmp / "dnc.txt"),
        "HOST:PORT": "127.0.0.1:1",
    }
    return [values.get(a, a) for a in argv]


def test_the_readme_shows_the_commands() -> None:
    commands = readme_commands()
    assert len(commands) > 20
    shown = {c.split()[1] for c in commands}
    # Every command of the CLI appears in the README.
    assert shown >= {"db", "report", "staffing", "validate", "render", "apply", "campaign", "sim",
                     "agent", "users", "audit", "recordings", "doctor", "run", "pin-hash"}  # fmt: skip


def test_every_readme_command_parses_as_written(tmp_path: Path) -> None:
    parser = build_parser()
    for template in readme_commands():
        for argv in expansions(template):
            argv = concrete(argv, tmp_path)
            if argv == ["--help"]:
                continue
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:
                pytest.fail(f"README: `{template}` -> callcenter {' '.join(argv)}: usage error {exc}")
            assert getattr(args, "func", None) is not None, template


# What each command the README shows does here, with a fresh database and no PBX or controller:
# its exit status (as the README says) and something its output must say.
EXPECTED: dict[str, tuple[int, str]] = {
    "--help": (0, "COMMAND"),
    "db migrate": (0, "schema at version"),
    "report": (0, "report"),
    "staffing --calls": (0, "agents"),
    "staffing --forecast": (2, "forecast"),  # the README's FILE.csv is a contact list, not a forecast
    "staffing --from-log": (2, "no history"),
    "validate": (2, "problem"),  # the example center's demo secrets are refused without the flag
    "render": (2, "problem"),  # the same check of secrets as validate
    "agent": (1, "cannot reach the controller"),
    "campaign import": (0, "import:"),
    "campaign pause": (0, "campaign renewals: paused"),
    "campaign resume": (0, "campaign renewals: running"),
    "campaign stop": (0, "campaign renewals: stopped"),
    "campaign status": (0, "campaign renewals"),
    "campaign dnc": (0, "dnc:"),
    "users add": (0, ""),
    "users token": (0, ""),
    "users list": (0, "readme-ops"),
    "users disable": (0, ""),
    "audit": (0, ""),
    "recordings purge": (2, "no recordings directory"),
    "pin-hash": (0, "scrypt:"),
    "customers import": (0, "stored"),
}
# Long-running or PBX-bound: they parse (above) and answer --help.
NOT_RUN = ("run", "demo", "db serve", "sim", "doctor", "apply")


def _key(argv: list[str]) -> str | None:
    for n in (2, 1):
        k = " ".join(argv[:n])
        if k in EXPECTED or k in NOT_RUN:
            return k
    return None


def test_readme_commands_run_as_documented(db_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "dnc.txt").write_text("+12125550100\n", encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": db_dsn, "COLUMNS": "80", "CALLCENTER_API": "http://127.0.0.1:1"}
    run_dir = tmp_path / "run"
    # The order the README gives matters for users (add before token); run them in that order.
    done: set[tuple[str, ...]] = set()
    added: set[str] = set()
    for template in readme_commands():
        for argv in expansions(template):
            argv = concrete(argv, tmp_path)
            key = _key(argv)
            assert key is not None, f"README command not covered by this test: callcenter {' '.join(argv)}"
            if tuple(argv) in done:
                continue
            done.add(tuple(argv))
            if key in NOT_RUN:
                argv = [*argv[: len(key.split())], "--help"]
                want_rc, want_out = 0, "usage:"
            else:
                want_rc, want_out = EXPECTED[key]
            if key == "users add" and key in added:
                want_rc, want_out = 1, "exists"  # the same name again (the form with its options)
            added.add(key)
            stdin = "correct-horse-battery-staple\n" if key == "users add" else "482917\n"
            res = subprocess.run(
                [sys.executable, "-m", "callcenter", "--run-dir", str(run_dir), *argv],
                input=stdin, capture_output=True, text=True, env=env, cwd=REPO, timeout=180, check=False,
            )  # fmt: skip
            said = res.stdout + res.stderr
            assert res.returncode == want_rc, f"callcenter {' '.join(argv)} -> {res.returncode}:\n{said}"
            assert want_out in said, f"callcenter {' '.join(argv)}:\n{said}"
