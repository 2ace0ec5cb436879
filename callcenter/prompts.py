"""Shell: synthesise ``ivr_prompts/<lang>/<id>.wav`` from ``ivr_prompts/prompts.yaml``.

``python -m callcenter.prompts ivr_prompts`` (what ``make prompts`` runs) speaks each prompt's
text with espeak-ng and converts it with sox to Asterisk's format: 8 kHz, mono, 16-bit signed
PCM WAV, without dither (so the same text gives the same bytes). Only prompts whose text or
voice changed are redone (``manifest.json`` records a digest per file); WAVs of prompts no longer
listed are removed. The WAVs are committed, so nothing else ever needs espeak-ng or sox.

The text goes to espeak-ng as one argv element (never through a shell) and file names come from
validated prompt ids and language codes only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from callcenter.config.load import Locations, Problems, load_prompts
from callcenter.errors import CallcenterError, ConfigError

# espeak-ng voice per language code (the language itself when not listed)
VOICES = {"en": "en-us", "es": "es-419", "fr": "fr-fr", "de": "de", "pt": "pt-br"}
SPEED_WPM = 160
TIMEOUT_S = 60
MANIFEST = "manifest.json"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CallcenterError(
            f"{name} is not installed (apt-get install espeak-ng sox); it is only needed to "
            "re-synthesise prompts, the committed WAVs work without it",
            code="tool_missing",
        )
    return path


def _digest(voice: str, text: str) -> str:
    return hashlib.sha256(f"{voice}\n{SPEED_WPM}\n8000/1/16\n{text}".encode()).hexdigest()


def synthesise(espeak: str, sox: str, voice: str, text: str, out: Path) -> None:
    """One prompt: espeak-ng to a temporary WAV, then sox to 8 kHz mono 16-bit, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prompt-") as tmp:
        raw = Path(tmp) / "raw.wav"
        conv = Path(tmp) / "out.wav"
        subprocess.run(  # noqa: S603 - fixed tool path, argv list, validated names
            [espeak, "-v", voice, "-s", str(SPEED_WPM), "-w", str(raw), "--", text],
            check=True,
            timeout=TIMEOUT_S,
            capture_output=True,
        )
        subprocess.run(  # noqa: S603 - fixed tool path, argv list
            [sox, "-D", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(conv)],
            check=True,
            timeout=TIMEOUT_S,
            capture_output=True,
        )
        os.replace(conv, out)


def build(prompts_dir: Path, *, force: bool = False) -> tuple[int, int, int]:
    """Bring the WAVs up to date; returns (made, kept, removed)."""
    problems = Problems(Locations())
    catalog = load_prompts(prompts_dir, problems, os.environ)
    if problems.items:
        problems.raise_if_any()
    manifest_path = prompts_dir / MANIFEST
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    wanted: dict[str, str] = {}
    made = kept = 0
    espeak = sox = ""
    for prompt in catalog.prompts.values():
        for lang, text in prompt.texts.items():
            rel = f"{lang}/{prompt.id}.wav"
            voice = VOICES.get(lang, lang)
            digest = _digest(voice, text)
            wanted[rel] = digest
            out = prompts_dir / rel
            if not force and manifest.get(rel) == digest and out.is_file():
                kept += 1
                continue
            if not espeak:
                espeak, sox = _tool("espeak-ng"), _tool("sox")
            try:
                synthesise(espeak, sox, voice, text, out)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                where = f"{prompts_dir.name}/prompts.yaml"
                raise ConfigError(f"could not synthesise {rel}: {exc}", file=where, key=prompt.id) from exc
            made += 1
    removed = 0
    for wav in sorted(prompts_dir.glob("*/*.wav")):
        rel = wav.relative_to(prompts_dir).as_posix()
        if rel not in wanted:
            wav.unlink()
            removed += 1
    tmp_manifest = manifest_path.with_suffix(".tmp")
    tmp_manifest.write_text(json.dumps(dict(sorted(wanted.items())), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp_manifest, manifest_path)
    return made, kept, removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callcenter.prompts", description=__doc__.splitlines()[0])
    parser.add_argument("prompts_dir", nargs="?", default="ivr_prompts", type=Path)
    parser.add_argument("--force", action="store_true", help="re-synthesise every prompt")
    args = parser.parse_args(argv)
    try:
        made, kept, removed = build(args.prompts_dir, force=args.force)
    except CallcenterError as exc:
        print(f"prompts: error: {exc}", file=sys.stderr)
        return 2
    print(f"prompts: {made} synthesised, {kept} up to date, {removed} removed ({args.prompts_dir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
