"""Shell: render Asterisk's configuration from a ``Config`` and the templates in ``asterisk-conf/``,
write it atomically, and apply it to a running Asterisk with rollback.

* ``render(config)`` -> ``[RenderedFile]``: every ``*.conf.j2`` through Jinja2 with
  ``StrictUndefined`` (a missing variable is an error, never an empty string) and a ``finalize``
  hook that refuses any interpolated value carrying CR, LF or NUL; static files are copied as
  they are. Same input, same bytes: no timestamps, stable ordering.
* ``write_files(files, out)``: each file is written to a temporary file in ``out``, fsynced and
  renamed over the old one; files holding secrets (``pjsip.conf``, ``manager.conf``,
  ``voicemail.conf``) are created mode 0600. Before the first rename the current set is copied
  to ``out/.previous/`` (the backup ``restore_previous`` puts back).
* ``apply(config, out, reloader)``: render, write, reload each module through ``reloader``
  (an injectable ``Reloader``; ``AMIReloader`` sends ``Reload Module=...`` over AMI); on any
  failure restore the previous files, reload again, and raise ``ApplyError``.
"""

from __future__ import annotations

import difflib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2

from callcenter.asterisk import names
from callcenter.config import dialout
from callcenter.config import model as m
from callcenter.errors import ApplyError, CallcenterError, ConfigError, UnsafeValueError
from callcenter.ports import ActionSender, Reloader

DEFAULT_TEMPLATES: Final = Path(__file__).resolve().parents[2] / "asterisk-conf"
SECRET_FILES: Final = frozenset({"pjsip.conf", "manager.conf", "voicemail.conf"})
BACKUP_DIR: Final = ".previous"
# What ``apply`` reloads, in order (Asterisk module names for the AMI ``Reload`` action).
RELOAD_MODULES: Final = (
    "res_pjsip.so",
    "res_musiconhold.so",
    "app_voicemail.so",
    "pbx_config.so",
    "manager",
)
VOICEMAIL_CONTEXT: Final = "callcenter"


@dataclass(frozen=True)
class RenderedFile:
    name: str
    text: str
    secret: bool = False

    @property
    def mode(self) -> int:
        return 0o600 if self.secret else 0o644


__all__ = [
    "RELOAD_MODULES",
    "AMIReloader",
    "ApplyError",
    "ApplyResult",
    "Reloader",
    "RenderedFile",
    "apply",
    "diff_files",
    "install_prompts",
    "render",
    "restore_previous",
    "write_files",
]


# ============================================================================ rendering
def _finalize(value: object) -> object:
    if value is None:
        raise UnsafeValueError("a template printed None (a missing optional value)", value="None")
    if isinstance(value, m.Secret):
        text = value.value
    else:
        text = str(value)
    if any(ch in text for ch in "\r\n\x00"):
        raise UnsafeValueError("a value bound for Asterisk's config has CR, LF or NUL", value=repr(text))
    return text


@dataclass(frozen=True)
class Feature:
    """One feature code as the dialplan sees it."""

    name: str
    code: str
    script: str  # AGI script
    arg: str  # first AGI argument
    exact: bool  # dialled alone
    with_digits: bool  # followed by digits (reason code, agent id)


_FEATURES: Final = {
    "agent_login": (names.AGI_FEATURE, True, False),
    "agent_logout": (names.AGI_FEATURE, True, False),
    "agent_pause": (names.AGI_FEATURE, True, True),
    "agent_unpause": (names.AGI_FEATURE, True, False),
    "pci_pause": (names.AGI_FEATURE, True, False),
    "pci_resume": (names.AGI_FEATURE, True, False),
    "record_start": (names.AGI_FEATURE, True, False),
    "supervisor_listen": (names.AGI_SPY, False, True),
    "supervisor_whisper": (names.AGI_SPY, False, True),
    "supervisor_barge": (names.AGI_SPY, False, True),
    "supervisor_ask": (names.AGI_SPY, False, True),
}


def features(config: m.Config) -> list[Feature]:
    out = []
    for name, code in config.feature_codes.items():
        script, exact, digits = _FEATURES[name]
        arg = name.removeprefix("supervisor_") if script == names.AGI_SPY else name
        out.append(Feature(name, code, script, arg, exact, digits))
    return out


def music_classes(config: m.Config) -> list[m.MusicClass]:
    """Every class with an absolute directory; ``default`` always exists (first)."""
    base = config.asterisk.moh_dir
    classes = dict(config.music)
    if "default" not in classes:
        classes = {"default": m.MusicClass("default", base), **classes}
    else:
        classes = {"default": classes.pop("default"), **classes}
    return [
        m.MusicClass(c.name, c.directory if c.directory.startswith("/") else f"{base}/{c.directory}", c.sort)
        for c in classes.values()
    ]


def open_hours_specs(center: m.Center) -> list[str]:
    """The center's weekly hours as ``GotoIfTime`` specs (``08:00-19:59,mon-fri,*,*,<zone>``):
    Asterisk's time ranges include their last minute, so a range ending at 20:00 is written
    ``-19:59``; consecutive days with the same hours share one spec."""

    def spec(r: m.TimeRange) -> str:
        end_minute = (r.end.hour * 60 + r.end.minute or 24 * 60) - 1
        return f"{r.start:%H:%M}-{end_minute // 60:02d}:{end_minute % 60:02d}"

    out: list[str] = []
    days = list(range(7))
    i = 0
    while i < 7:
        ranges = center.hours.get(days[i], ())
        j = i
        while j + 1 < 7 and center.hours.get(days[j + 1], ()) == ranges:
            j += 1
        span = m.WEEKDAYS[i] if i == j else f"{m.WEEKDAYS[i]}-{m.WEEKDAYS[j]}"
        out.extend(f"{spec(r)},{span},*,*,{center.timezone}" for r in ranges)
        i = j + 1
    return out


def endpoint_media(media: m.SipMedia, dtmf_mode: m.DtmfMode | None = None) -> list[tuple[str, str]]:
    """An endpoint's DTMF, RTP-timeout and session-timer options as pjsip.conf lines (key, value);
    ``dtmf_mode`` (one phone's own) overrides ``media``'s."""
    return [
        ("dtmf_mode", (dtmf_mode or media.dtmf_mode).value),
        ("rtp_timeout", str(media.rtp_timeout)),
        ("rtp_timeout_hold", str(media.rtp_timeout_hold)),
        ("timers", media.timers.value),
        ("timers_sess_expires", str(media.timers_sess_expires)),
        ("timers_min_se", str(media.timers_min_se)),
    ]


def template_context(config: m.Config) -> dict[str, Any]:
    a = config.asterisk

    def agi(script: str, *args: str) -> str:
        url = f"agi://{a.agi.host}:{a.agi.port}/{script}"
        return ",".join((url, *args))

    def sound(prompt_id: str, language: str | None = None) -> str:
        lang = language or config.center.default_language
        return f"{a.sounds_dir}/{m.prompt_sound(prompt_id, lang)}"

    endpoints = [ag.endpoint for ag in config.agents.values()]
    if config.fallback is not None and config.fallback.endpoints:
        endpoints = list(config.fallback.endpoints)
    outbound_trunks = [t for t in config.trunks.values() if t.outbound]
    mailboxes = dict(config.mailboxes)
    return {
        "cc": config,
        "n": names.TEMPLATE_NAMES,
        "agi": agi,
        "var": lambda name: "${" + name + "}",
        "sound": sound,
        "features": features(config),
        "ring_group": "&".join(f"PJSIP/{ep}" for ep in endpoints),
        "music_classes": music_classes(config),
        "outbound_trunk": outbound_trunks[0] if outbound_trunks else None,
        "mailboxes": mailboxes,
        "vm_context": VOICEMAIL_CONTEXT,
        "spy_options": m.SPY_OPTIONS,
        "open_hours": open_hours_specs(config.center),
        "media": endpoint_media,
        "dialout": dialout.dialplan_rules(config),
        "campaign_trunks": sorted(
            {c.trunk or "dialer" for c in config.campaigns.values()} & set(config.trunks)
        ),
    }


def environment(templates: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - Asterisk .conf files, not HTML; values are checked by finalize
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )


def render(config: m.Config, *, templates: Path = DEFAULT_TEMPLATES) -> list[RenderedFile]:
    """Every file of the configuration set, sorted by name. Raises ``ConfigError`` (naming the
    template and line) on a template mistake and ``UnsafeValueError`` on an unsafe value."""
    if not templates.is_dir():
        raise ConfigError("templates directory not found", file=str(templates))
    env = environment(templates)
    ctx = template_context(config)
    out: list[RenderedFile] = []
    for path in sorted(templates.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name.endswith("~"):
            continue
        if path.name.endswith(".j2"):
            name = path.name.removesuffix(".j2")
            try:
                text = env.get_template(path.name).render(ctx)
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"template error: {exc.message}", file=path.name, line=exc.lineno) from exc
            except jinja2.UndefinedError as exc:
                raise ConfigError(f"template uses an undefined value: {exc.message}", file=path.name) from exc
        else:
            name = path.name
            text = path.read_text(encoding="utf-8")
        out.append(RenderedFile(name, text, secret=name in SECRET_FILES))
    return out


# ============================================================================ writing
def _write_one(out: Path, f: RenderedFile, mode: int | None = None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".tmp", dir=out)
    done = False
    try:
        os.fchmod(fd, f.mode if mode is None else mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(f.text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out / f.name)
        done = True
    finally:
        if not done:
            Path(tmp).unlink(missing_ok=True)


def _snapshot(out: Path, names_: Iterable[str]) -> Path:
    """Copy the current files named ``names_`` (those that exist) to ``out/.previous``."""
    wanted = sorted(set(names_))
    staging = Path(tempfile.mkdtemp(prefix=".previous-", dir=out))
    for name in wanted:
        src = out / name
        if src.is_file():
            shutil.copy2(src, staging / name)
    (staging / ".complete").write_text("\n".join(wanted) + "\n", encoding="utf-8")
    backup = out / BACKUP_DIR
    old = out / f"{BACKUP_DIR}.old"
    if old.exists():
        shutil.rmtree(old)
    if backup.exists():
        os.replace(backup, old)
    os.replace(staging, backup)
    if old.exists():
        shutil.rmtree(old)
    return backup


def write_files(files: Sequence[RenderedFile], out: Path) -> Path:
    """Write ``files`` into ``out`` atomically (per file); returns the backup directory."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        backup = _snapshot(out, (f.name for f in files))
        for f in files:
            _write_one(out, f)
    except OSError as exc:
        raise ConfigError(f"cannot write the configuration: {exc.strerror or exc}", file=str(out)) from exc
    return backup


def diff_files(files: Sequence[RenderedFile], out: Path) -> list[str]:
    """A dry run: unified diff lines between what is in ``out`` and ``files``. Files holding
    secrets are only said to change, never shown."""
    lines: list[str] = []
    for f in files:
        current_path = out / f.name
        try:
            current = current_path.read_text(encoding="utf-8") if current_path.is_file() else None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(current_path)) from exc
        if current == f.text:
            continue
        if f.secret:
            state = "new" if current is None else "changed"
            lines.append(f"*** {f.name}: {state} (it holds secrets: not shown)\n")
            continue
        lines.extend(
            difflib.unified_diff(
                (current or "").splitlines(keepends=True),
                f.text.splitlines(keepends=True),
                fromfile=f"{out.name}/{f.name}" if current is not None else "/dev/null",
                tofile=f"rendered/{f.name}",
            )
        )
    return lines


def restore_previous(out: Path) -> list[str]:
    """Put the backed-up set back (files that did not exist before are removed). Returns the
    names restored or removed."""
    backup = out / BACKUP_DIR
    listing = backup / ".complete"
    if not listing.is_file():
        raise ConfigError("no complete backup to restore", file=str(backup))
    done = []
    for name in listing.read_text(encoding="utf-8").split():
        saved = backup / name
        if saved.is_file():  # put back with the mode it had
            mode = stat.S_IMODE(saved.stat().st_mode)
            _write_one(out, RenderedFile(name, saved.read_text(encoding="utf-8")), mode)
        else:
            (out / name).unlink(missing_ok=True)
        done.append(name)
    return done


def install_prompts(prompts_dir: Path, sounds_dir: Path) -> int:
    """Copy ``prompts_dir/<lang>/<id>.wav`` to ``sounds_dir/<lang>/`` (where Playback finds
    ``AsteriskSettings.sounds_dir/<lang>/<id>``), each file atomically; unchanged files are
    skipped. Returns how many were copied."""
    copied = 0
    try:
        for wav in sorted(prompts_dir.glob("*/*.wav")):
            target_dir = sounds_dir / wav.parent.name
            target = target_dir / wav.name
            data = wav.read_bytes()
            if target.is_file() and target.read_bytes() == data:
                continue
            target_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{wav.name}.", suffix=".tmp", dir=target_dir)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            copied += 1
    except OSError as exc:
        raise ConfigError(f"cannot install prompts: {exc.strerror or exc}", file=str(sounds_dir)) from exc
    return copied


# ============================================================================ applying
class AMIReloader:
    """A ``Reloader`` over an AMI client (``AMIClient.send_action``): ``Reload Module=<m>``."""

    def __init__(self, client: ActionSender, *, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout

    async def __call__(self, module: str) -> None:
        await self.client.send_action(names.ACTION_RELOAD, {"Module": module}, timeout=self.timeout)


@dataclass(frozen=True)
class ApplyResult:
    files: tuple[str, ...]
    reloaded: tuple[str, ...]
    backup: Path


async def apply(
    config: m.Config,
    out: Path,
    reloader: Reloader,
    *,
    templates: Path = DEFAULT_TEMPLATES,
    modules: Sequence[str] = RELOAD_MODULES,
) -> ApplyResult:
    """Render, write, reload. On a reload failure the previous files are restored and reloaded
    (best effort) and ``ApplyError`` says what happened. Nothing is written when rendering fails."""
    files = render(config, templates=templates)
    backup = write_files(files, out)
    reloaded: list[str] = []
    current = ""
    try:
        for current in modules:
            await reloader(current)
            reloaded.append(current)
    except (CallcenterError, OSError, TimeoutError) as exc:
        restored = False
        detail = ""
        try:
            restore_previous(out)
            restored = True
            for again_module in modules:
                await reloader(again_module)
        except (CallcenterError, OSError, TimeoutError) as again:
            detail = f"; restoring/reloading the previous configuration also failed: {again}"
        raise ApplyError(
            f"reloading {current} failed: {exc}; previous configuration "
            f"{'restored' if restored else 'NOT restored'}{detail}",
            restored=restored,
        ) from exc
    return ApplyResult(tuple(f.name for f in files), tuple(reloaded), backup)
