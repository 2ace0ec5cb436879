"""``callcenter campaign import|pause|resume|stop|status`` against the real private PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callcenter.cli import main
from tests.centers import REPO


@pytest.fixture
def cli(db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    return tmp_path


def run(tmp: Path, *args: str) -> int:
    return main(["--run-dir", str(tmp / "run"), "campaign", *args])


def test_import_reports_bad_rows_and_skips_dnc(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = cli / "list.csv"
    csv.write_text(
        "phone,name,plan\n"
        "(212) 555-0143,Ivy,gold\n"
        "not a phone,Bad,x\n"
        "+1 415 555 0123,Blocked,y\n"
        "+44 20 7946 0018,Uk,z\n"
    )
    dnc = cli / "dnc.txt"
    dnc.write_text("# ours\n+14155550123\n")
    assert (
        run(
            cli,
            "import",
            str(csv),
            "--campaign",
            "spring",
            "--dnc",
            str(dnc),
            "--timezone",
            "America/Chicago",
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "2 good rows, 2 new contacts in spring, 1 bad rows, 1 on the do-not-call list" in out
    assert f"{csv}:line 3, column phone" in err
    assert run(cli, "import", str(csv), "--campaign", "spring") == 0  # again: nothing new
    assert "0 new contacts" in capsys.readouterr().out
    assert run(cli, "status", "spring", "--format", "json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["contacts"] == {"pending": 2} and status["state"] == "running"


def test_import_from_the_example_config(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dialplans = REPO / "dialplans"
    csv = dialplans / "campaigns" / "renewals.csv"
    assert run(cli, "import", str(csv), "--campaign", "renewals", "--config", str(dialplans)) == 0
    out = capsys.readouterr().out
    assert "new contacts in renewals" in out


def test_import_with_the_config_refuses_what_the_dial_out_policy_refuses(
    cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A premium-rate number and a denied prefix in the list are bad rows, located, not contacts."""
    csv = cli / "list.csv"
    csv.write_text("phone,name\n+1 212 555 0143,Ivy\n+1 900 555 0199,Premium\n+1 212 555 0188,Jo\n")
    dialplans = REPO / "dialplans"
    assert run(cli, "import", str(csv), "--campaign", "renewals", "--config", str(dialplans)) == 0
    out, err = capsys.readouterr()
    assert "2 good rows, 2 new contacts in renewals, 1 bad rows" in out
    assert err.splitlines() == [
        f"{csv}:line 3, column phone: +19005550199: the dial-out policy refuses it (premium_rate)"
    ]
    assert run(cli, "status", "renewals", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["contacts"] == {"pending": 2}


def test_pause_resume_stop(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = cli / "one.csv"
    csv.write_text("phone\n+12125550143\n")
    assert run(cli, "import", str(csv), "--campaign", "c1") == 0
    assert run(cli, "pause", "c1") == 0
    assert "campaign c1: paused" in capsys.readouterr().out
    assert run(cli, "resume", "c1") == 0
    assert run(cli, "stop", "c1") == 0
    capsys.readouterr()
    assert run(cli, "resume", "c1") == 1
    assert "is stopped" in capsys.readouterr().err
    assert run(cli, "status", "c1") == 0
    out = capsys.readouterr().out
    assert "c1" in out and "stopped" in out and "abandoned 0 of 0" in out
    assert run(cli, "pause", "nope") == 1


def test_center_wide_dnc(cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dnc = cli / "center-dnc.txt"
    dnc.write_text("+12125550143\n(415) 555-0123\nnope\n")
    assert run(cli, "dnc", str(dnc)) == 0
    out, err = capsys.readouterr()
    assert "2 numbers on the center's do-not-call list, 1 bad lines" in out and "line 3" in err
    csv = cli / "list.csv"
    csv.write_text("phone\n+12125550143\n+12125550144\n")
    assert run(cli, "import", str(csv), "--campaign", "autumn") == 0
    assert "1 new contacts in autumn" in capsys.readouterr().out  # the other is on the center's list
