"""``callcenter validate`` / ``render`` exit codes and output, and the committed prompt audio."""

from __future__ import annotations

import io
import json
import shutil
import stat
import wave
from pathlib import Path

import pytest

from callcenter import prompts
from callcenter.cli import main
from callcenter.config.load import Locations, Problems, load_prompts
from tests.centers import REPO


def test_validate_clean_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "dialplans"), "--allow-demo-secrets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{REPO / 'dialplans'}: OK (4 numbers, 2 flows")


def _line(path: Path, text: str) -> int:
    return path.read_text().splitlines().index(text) + 1


def test_validate_refuses_the_demo_secrets_located(capsys: pytest.CaptureFixture[str]) -> None:
    d = REPO / "dialplans"
    assert main(["validate", str(d)]) == 2
    err = capsys.readouterr().err.splitlines()
    ami = _line(
        d / "center.yaml", "    secret: ${CC_AMI_SECRET:-change-me-ami}   # set CC_AMI_SECRET in production"
    )
    trunk = _line(d / "trunks.yaml", "      password: ${CC_DIALER_TRUNK_PASSWORD:-change-me-trunk}")
    pin = _line(d / "people.yaml", '    pin: "4821"')
    sip = _line(d / "people.yaml", "    sip_password: ${CC_SIP_9002:-nw-9002-phone}")
    placeholder = "weak secret: a placeholder; set a strong one (e.g. from ${ENV_VAR})"
    assert f"center.yaml:{ami}: asterisk.ami.secret: {placeholder}" in err
    assert f"trunks.yaml:{trunk}: trunks.dialer.auth.password: {placeholder}" in err
    assert f"people.yaml:{sip}: supervisors.9002.sip_password: {placeholder}" in err
    plain = "PIN in plain text in the YAML: store pin_hash (callcenter pin-hash) or ${ENV_VAR}"
    assert f"people.yaml:{pin}: agents.1001.pin: {plain}" in err
    apply_user = _line(
        d / "center.yaml",
        "    secret: ${CC_AMI_APPLY_SECRET:-change-me-ami-apply}   # set CC_AMI_APPLY_SECRET in production",
    )
    assert f"center.yaml:{apply_user}: asterisk.ami_apply.secret: {placeholder}" in err
    # the two AMI users' secrets, one trunk, 8 phones, 6 agents' PINs
    assert err[-1] == f"{d}: 17 problem(s)"
    assert not any("4821" in line or "change-me-ami" in line for line in err)  # never the secret


def test_strong_secrets_from_the_environment_and_pin_hashes_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", d)
    shutil.copytree(REPO / "ivr_prompts", tmp_path / "ivr_prompts")
    people = (d / "people.yaml").read_text()
    for i, pin in enumerate(("4821", "7310", "1946", "5503", "8820", "3377")):
        monkeypatch.setattr("sys.stdin", io.StringIO(f"{pin}\n"))
        assert main(["pin-hash"]) == 0
        hashed = capsys.readouterr().out.strip()
        assert hashed.startswith("scrypt:16384:8:1:") and pin not in hashed
        people = people.replace(f'    pin: "{pin}"', f"    pin_hash: {hashed}")
        monkeypatch.setenv(f"CC_SIP_100{i + 1}", f"Phone-{i}-x7Rk2pQ9vW")
    (d / "people.yaml").write_text(people)
    for name in (
        "CC_AMI_SECRET",
        "CC_AMI_APPLY_SECRET",
        "CC_DIALER_TRUNK_PASSWORD",
        "CC_SIP_9001",
        "CC_SIP_9002",
    ):
        monkeypatch.setenv(name, f"{name.lower()}-Zq8vN3kLw5")
    assert main(["validate", str(d)]) == 0, capsys.readouterr().err
    monkeypatch.setenv("CC_AMI_SECRET", "short1")
    assert main(["validate", str(d)]) == 2
    assert (
        "asterisk.ami.secret: weak secret: shorter than 12 characters (from ${CC_AMI_SECRET})"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("typed", ["1234", "246810", "000000", "12", "12ab"])
def test_pin_hash_refuses_weak_or_malformed_pins(
    typed: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed + "\n"))
    assert main(["pin-hash"]) == 2
    assert capsys.readouterr().out == ""


def test_validate_reports_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", d)
    shutil.copytree(REPO / "ivr_prompts", tmp_path / "ivr_prompts")
    text = (d / "acd.yaml").read_text()
    text = text.replace("    wrapup: 15\n", "    wrapup: soon\n").replace(
        "    music_class: calm\n", "    music_clas: calm\n", 1
    )
    (d / "acd.yaml").write_text(text)
    lines = text.splitlines()
    assert main(["validate", str(d)]) == 2
    err = capsys.readouterr().err.splitlines()
    wrapup = lines.index("    wrapup: soon") + 1
    music = lines.index("    music_clas: calm") + 1
    assert err == [
        f"acd.yaml:{wrapup}: queues.sales.wrapup: expected a number 0..3600, found 'soon'",
        f"acd.yaml:{music}: queues.billing.music_clas: unknown key 'music_clas'; did you mean 'music_class'?",
        f"{d}: 2 problem(s)",
    ]


def test_validate_missing_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_render_writes_the_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "asterisk"
    assert main(["render", str(REPO / "dialplans"), "--allow-demo-secrets", "--out", str(out)]) == 0
    assert (out / "extensions.conf").is_file()
    assert stat.S_IMODE((out / "manager.conf").stat().st_mode) == 0o600
    assert "render: 11 files written" in capsys.readouterr().out


def test_render_refuses_invalid_yaml_and_writes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", d)
    (d / "broken.yaml").write_text("queues: [\n")
    assert (
        main(["render", str(d), "--prompts", str(REPO / "ivr_prompts"), "--out", str(tmp_path / "out")]) == 2
    )
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ prompt audio
def test_every_prompt_has_8khz_mono_16bit_audio_per_language() -> None:
    problems = Problems(Locations())
    catalog = load_prompts(REPO / "ivr_prompts", problems, {})
    assert not problems.items
    assert catalog.prompts
    for prompt in catalog.prompts.values():
        for lang in prompt.texts:
            assert catalog.has_audio(prompt.id, lang), (prompt.id, lang)
            with wave.open(str(REPO / "ivr_prompts" / lang / f"{prompt.id}.wav"), "rb") as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
                assert w.getnframes() > 4000  # at least half a second of speech


def test_committed_audio_matches_the_texts() -> None:
    """The manifest digests say which text/voice made each WAV: editing prompts.yaml without
    running ``make prompts`` fails here."""
    manifest = json.loads((REPO / "ivr_prompts" / "manifest.json").read_text())
    catalog = load_prompts(REPO / "ivr_prompts", Problems(Locations()), {})
    expected = {
        f"{lang}/{p.id}.wav": prompts._digest(prompts.VOICES.get(lang, lang), text)
        for p in catalog.prompts.values()
        for lang, text in p.texts.items()
    }
    assert manifest == expected


def test_prompts_up_to_date_needs_no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "ivr_prompts"
    shutil.copytree(REPO / "ivr_prompts", d)
    (d / "en" / "stale-old-prompt.wav").write_bytes(b"RIFF")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # neither espeak-ng nor sox
    assert prompts.build(d) == (0, len(json.loads((d / "manifest.json").read_text())), 1)
    assert not (d / "en" / "stale-old-prompt.wav").exists()


def test_prompts_changed_text_without_tools_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "ivr_prompts"
    shutil.copytree(REPO / "ivr_prompts", d)
    text = (
        (d / "prompts.yaml")
        .read_text()
        .replace("Thank you for calling Northwind", "Thanks for calling Northwind")
    )
    (d / "prompts.yaml").write_text(text)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert prompts.main([str(d)]) == 2
    assert "espeak-ng is not installed" in capsys.readouterr().err


def test_render_diff_is_a_dry_run_that_hides_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asterisk"
    assert main(["render", str(REPO / "dialplans"), "--allow-demo-secrets", "--out", str(out), "--diff"]) == 1
    text = capsys.readouterr().out
    assert not out.exists()
    assert "+++ rendered/extensions.conf" in text
    assert "*** pjsip.conf: new (it holds secrets: not shown)" in text
    assert "nw-1001-phone" not in text and "change-me-ami" not in text
    assert main(["render", str(REPO / "dialplans"), "--allow-demo-secrets", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["render", str(REPO / "dialplans"), "--allow-demo-secrets", "--out", str(out), "--diff"]) == 0
    assert capsys.readouterr().out.endswith("no change against " + str(out) + " (nothing written)\n")
