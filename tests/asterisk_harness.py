"""Test helper: a real Asterisk (``$ASTERISK_BIN``) started in a private temporary directory.

``start_asterisk(files, ...)`` writes the given configuration files (normally our own, from
``callcenter.config.render.render``) into ``ROOT/etc``, plus what the harness generates:

* ``asterisk.conf`` pointing every writable directory into ROOT (modules stay in the installation
  beside the binary); the rendered one (``/etc/asterisk`` paths) is replaced. The data directory
  is the installation's when its ``sounds/`` holds Asterisk's core sounds (``digits/1``), else
  ROOT/data: the installation's data linked in, with ``sounds`` linked to the first directory
  that really holds them (Debian's ``/usr/share/asterisk/sounds``, ...): a hand-built Asterisk
  installs an empty sounds directory;
* in ``pjsip.conf`` every ``bind = 0.0.0.0:5060`` becomes ``127.0.0.1:<free port>`` (loopback);
* ``manager.conf`` gets a second, test-only AMI user with every permission (``command``,
  ``dialplan``, ``agi`` events) so tests can run CLI commands and watch what the controller's
  least-privilege user cannot; the rendered user is left as it is;
* ``logger.conf`` gets a ``full`` log with verbose messages (for failure diagnostics);
* ``amd.conf`` and ``indications.conf``, small files of our own, when not given (app_amd
  declines to load without the first; the second gives the ringing/busy tones).

Then it starts ``asterisk -f -n -C ROOT/etc/asterisk.conf``, waits (bounded) until AMI accepts a
login, and ``stop()`` sends ``core stop now`` and reaps the process (killing it if it lingers).
``ASTERISK_BIN`` unset: ``require_asterisk()`` skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcenter.config import model as cm
from callcenter.config.load import load_config
from callcenter.config.render import render

REPO = Path(__file__).resolve().parent.parent
ASTERISK_BIN = os.environ.get("ASTERISK_BIN", "")
SKIP_REASON = "ASTERISK_BIN is not set (path of a real Asterisk 22 binary)"
ADMIN_USER = "cctest"
DEBIAN_MOH = Path("/usr/share/asterisk/moh")
# Where Asterisk's core sounds (digits/N, vm-*) may be installed, after the installation's own.
SOUNDS_CANDIDATES = (Path("/usr/share/asterisk/sounds"), Path("/var/lib/asterisk/sounds"))
# A test carrier's source address: loopback, yet not the 127.0.0.1 phones register from (a
# carrier's identify match covering a phone's address would take the phone for the carrier).
CARRIER_ADDRESS = "127.0.0.2"

MINIMAL_AMD = """; amd.conf - test harness (app_amd declines to load without this file)
[general]
initial_silence = 2500
greeting = 1500
after_greeting_silence = 800
total_analysis_time = 5000
min_word_length = 100
between_words_silence = 50
maximum_number_of_words = 2
silence_threshold = 256
maximum_word_length = 5000
"""

MINIMAL_INDICATIONS = """; indications.conf - test harness (US tones only)
[general]
country = us

[us]
description = United States / North America
ringcadence = 2000,4000
dial = 350+440
busy = 480+620/500,0/500
ring = 440+480/2000,0/4000
congestion = 480+620/250,0/250
callwaiting = 440/300,0/9700
dialrecall = !350+440/100,!0/100,!350+440/100,!0/100,!350+440/100,!0/100,350+440
record = 1400/500,0/15000
info = !950/330,!1400/330,!1800/330,0
"""


def require_asterisk() -> Path:
    """The binary, or skip the calling test."""
    if not ASTERISK_BIN:
        pytest.skip(SKIP_REASON)
    path = Path(ASTERISK_BIN)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"ASTERISK_BIN={ASTERISK_BIN} is not an executable file")
    return path


def free_port() -> int:
    """A loopback port free for both TCP and UDP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free loopback port")


def installation_dirs(binary: Path) -> tuple[Path, Path]:
    """(modules dir, data dir) of the installation the binary belongs to (PREFIX/sbin/asterisk)."""
    prefix = binary.resolve().parent.parent
    mod = prefix / "lib" / "asterisk" / "modules"
    if not mod.is_dir():
        mod = prefix / "lib64" / "asterisk" / "modules"
    data = prefix / "var" / "lib" / "asterisk"
    if not data.is_dir() and Path("/usr/share/asterisk").is_dir():
        data = Path("/usr/share/asterisk")
    return mod, data


def has_core_sounds(sounds: Path) -> bool:
    """``sounds`` really holds Asterisk's core sounds (``en/digits/1.*`` or ``digits/1.*``), not
    just the empty directory a source install leaves."""
    return any(any((sounds / sub).glob("1.*")) for sub in ("en/digits", "digits") if (sounds / sub).is_dir())


def core_sounds(data: Path) -> Path | None:
    """The first of ``data/sounds`` and ``SOUNDS_CANDIDATES`` that holds the core sounds."""
    return next((d for d in (data / "sounds", *SOUNDS_CANDIDATES) if has_core_sounds(d)), None)


def data_dir(root: Path, binary: Path) -> Path:
    """Asterisk's ``astdatadir`` for a test: the installation's own when it holds the core sounds
    (or none is found anywhere); else ROOT/data with the installation's entries linked in and
    ``sounds`` linked to the directory that holds them."""
    _, data = installation_dirs(binary)
    sounds = core_sounds(data)
    if sounds is None or sounds == data / "sounds":
        return data
    out = root / "data"
    out.mkdir(exist_ok=True)
    for entry in sorted(data.iterdir()) if data.is_dir() else ():
        if entry.name != "sounds" and not (out / entry.name).exists():
            (out / entry.name).symlink_to(entry)
    if not (out / "sounds").exists():
        (out / "sounds").symlink_to(sounds)
    return out


# ============================================================================ the example center
@dataclass(frozen=True)
class CenterSetup:
    config: cm.Config
    ami_secret: str
    agi_port: int


def example_center(root: Path, *, ami_port: int, agi_port: int, ami_secret: str) -> cm.Config:
    """``dialplans/`` as ops wrote it, with the AMI secret from the environment mapping the loader
    reads, and the machine-specific places moved for the test: AMI/AGI ports, prompts from the
    repository's ``ivr_prompts/``, music under ROOT/moh, recordings and spool under ROOT, and the
    carrier matched at ``CARRIER_ADDRESS`` (its documentation range reaches nothing here)."""
    config = load_config(
        REPO / "dialplans",
        env={"CC_AMI_SECRET": ami_secret, "CC_SIP_1001": "from-env-1001"},
    )
    a = config.asterisk
    asterisk = dataclasses.replace(
        a,
        ami=dataclasses.replace(a.ami, host="127.0.0.1", port=ami_port),
        agi=dataclasses.replace(a.agi, host="127.0.0.1", port=agi_port, bind="127.0.0.1"),
        sounds_dir=str(REPO / "ivr_prompts"),
        moh_dir=str(root / "moh"),
        spool_dir=str(root / "spool"),
    )
    recording = dataclasses.replace(config.recording, directory=str(root / "recordings"))
    carrier = dataclasses.replace(config.trunks["carrier"], match=(CARRIER_ADDRESS,))
    trunks = cm.frozen_map({**config.trunks, "carrier": carrier})
    return dataclasses.replace(config, asterisk=asterisk, recording=recording, trunks=trunks)


def music_dirs(config: cm.Config) -> None:
    """Each music class's directory, filled with links to Debian's MOH files (or one generated
    second of silence when those are not installed)."""
    from callcenter.config.render import music_classes

    sources = sorted(DEBIAN_MOH.glob("*.wav")) if DEBIAN_MOH.is_dir() else []
    for mc in music_classes(config):
        d = Path(mc.directory)
        d.mkdir(parents=True, exist_ok=True)
        if sources:
            for src in sources:
                link = d / src.name
                if not link.exists():
                    link.symlink_to(src)
        else:
            _silence_wav(d / "silence.wav")


def _silence_wav(path: Path, seconds: float = 1.0) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(8000 * seconds))


def rendered_files(config: cm.Config) -> dict[str, str]:
    return {f.name: f.text for f in render(config)}


# ============================================================================ the process
@dataclass
class RealAsterisk:
    binary: Path
    root: Path
    ami_port: int
    sip_port: int
    admin_secret: str
    proc: subprocess.Popen[bytes] | None = None
    console: Path = field(init=False)

    def __post_init__(self) -> None:
        self.console = self.root / "console.out"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def conf(self) -> Path:
        return self.etc / "asterisk.conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def cli(self, command: str, timeout: float = 15.0) -> str:
        """One CLI command over the control socket (``asterisk -rx``)."""
        if "\n" in command or "\r" in command:
            raise ValueError("CLI command with a line break")
        out = subprocess.run(
            [str(self.binary), "-C", str(self.conf), "-rx", command],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return out.stdout.decode("utf-8", "replace")

    def messages(self) -> str:
        """The messages log (notice, warning, error, security) so far."""
        path = self.log_dir / "messages.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def full_log(self) -> str:
        path = self.log_dir / "full"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def problems(self, *, ignore: tuple[str, ...] = ()) -> list[str]:
        """WARNING / ERROR lines of the messages log, minus those matching an ``ignore`` regex."""
        lines = []
        for line in self.messages().splitlines():
            if not re.search(r"\b(WARNING|ERROR)\[", line):
                continue
            if any(re.search(pat, line) for pat in ignore):
                continue
            lines.append(line)
        return lines

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self.cli("core stop now", timeout=timeout)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.proc = None


def _asterisk_conf(root: Path, binary: Path) -> str:
    mod, _ = installation_dirs(binary)
    data = data_dir(root, binary)
    dirs = {
        "astetcdir": root / "etc",
        "astmoddir": mod,
        "astvarlibdir": root / "varlib",
        "astdbdir": root / "db",
        "astkeydir": root / "varlib",
        "astdatadir": data,
        "astagidir": root / "agi-bin",
        "astspooldir": root / "spool",
        "astrundir": root / "run",
        "astlogdir": root / "log",
        "astsbindir": binary.resolve().parent,
    }
    lines = ["; asterisk.conf - generated by tests/asterisk_harness.py", "[directories]"]
    lines += [f"{k} => {v}" for k, v in dirs.items()]
    lines += ["", "[options]", "verbose = 3", "debug = 0", "maxcalls = 600", "transmit_silence = yes", ""]
    return "\n".join(lines)


def prepare(
    root: Path,
    files: Mapping[str, str],
    *,
    binary: Path,
    ami_port: int,
    sip_port: int,
    admin_secret: str,
    dialplan_extra: str = "",
) -> RealAsterisk:
    """Write ROOT/etc (see the module docstring) and the directories Asterisk writes into."""
    for d in ("etc", "varlib", "db", "agi-bin", "spool", "run", "log", "moh", "recordings"):
        (root / d).mkdir(parents=True, exist_ok=True)
    etc = root / "etc"
    out = dict(files)
    out["asterisk.conf"] = _asterisk_conf(root, binary)
    if "pjsip.conf" in out:
        out["pjsip.conf"] = re.sub(
            r"(?m)^bind\s*=\s*[0-9.]+:\d+\s*$", f"bind = 127.0.0.1:{sip_port}", out["pjsip.conf"]
        )
    if "manager.conf" in out:
        text = out["manager.conf"]
        text = re.sub(r"(?m)^port\s*=.*$", f"port = {ami_port}", text)
        text = re.sub(r"(?m)^bindaddr\s*=.*$", "bindaddr = 127.0.0.1", text)
        out["manager.conf"] = text.rstrip("\n") + (
            "\n\n; ---- added by tests/asterisk_harness.py: a test-only user with every permission\n"
            f"[{ADMIN_USER}]\nsecret = {admin_secret}\ndeny = 0.0.0.0/0.0.0.0\n"
            "permit = 127.0.0.1/255.255.255.255\nread = all\nwrite = all\n"
        )
    if "logger.conf" in out:
        out["logger.conf"] = out["logger.conf"].rstrip("\n") + (
            "\n; added by tests/asterisk_harness.py\nfull => notice,warning,error,verbose(4),dtmf\n"
        )
    if dialplan_extra:
        out["extensions.conf"] = out.get("extensions.conf", "").rstrip("\n") + "\n\n" + dialplan_extra
    out.setdefault("amd.conf", MINIMAL_AMD)
    out.setdefault("indications.conf", MINIMAL_INDICATIONS)
    for name, text in out.items():
        path = etc / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
    return RealAsterisk(binary, root, ami_port, sip_port, admin_secret)


def start(ast: RealAsterisk, *, deadline: float = 45.0) -> None:
    """Start the prepared instance in the foreground (``-f -n``, console to ROOT/console.out) and
    wait until AMI accepts the admin login; raise with the console's tail if it does not."""
    console = ast.console.open("wb")
    try:
        ast.proc = subprocess.Popen(
            [str(ast.binary), "-f", "-n", "-C", str(ast.conf)],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        console.close()
    until = time.monotonic() + deadline
    last = "never connected"
    while time.monotonic() < until:
        if ast.proc.poll() is not None:
            raise RuntimeError(f"asterisk exited with {ast.proc.returncode}:\n{_tail(ast.console)}")
        ok, last = _ami_login(ast.ami_port, ADMIN_USER, ast.admin_secret)
        if ok:
            fully = ast.cli("core waitfullybooted", timeout=max(1.0, until - time.monotonic()))
            if "fully booted" in fully.lower() or fully.strip() == "":
                return
        time.sleep(0.25)  # polling a port of another process: no event to wait on
    ast.stop()
    raise RuntimeError(f"AMI on port {ast.ami_port} not ready in {deadline}s ({last}):\n{_tail(ast.console)}")


def _tail(path: Path, n: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text("utf-8", "replace").splitlines()[-n:])


def _ami_login(port: int, user: str, secret: str, timeout: float = 2.0) -> tuple[bool, str]:
    """One synchronous AMI login attempt: (accepted, what happened)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return False, "closed before the banner"
                buf += chunk
            s.sendall(
                f"Action: Login\r\nActionID: h1\r\nUsername: {user}\r\nSecret: {secret}\r\n"
                "Events: off\r\n\r\n".encode()
            )
            buf = buf.split(b"\r\n", 1)[1]
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    return False, "closed before the login response"
                buf += chunk
            text = buf.decode("utf-8", "replace")
            return ("Response: Success" in text), text.split("\r\n\r\n", 1)[0]
    except OSError as exc:
        return False, str(exc)


@contextlib.contextmanager
def running_asterisk(
    files: Mapping[str, str],
    *,
    binary: Path,
    root: Path,
    ami_port: int,
    dialplan_extra: str = "",
    deadline: float = 45.0,
) -> Iterator[RealAsterisk]:
    """Prepare, start, yield, stop (always)."""
    ast = prepare(
        root,
        files,
        binary=binary,
        ami_port=ami_port,
        sip_port=free_port(),
        admin_secret=secrets.token_hex(12),
        dialplan_extra=dialplan_extra,
    )
    try:
        start(ast, deadline=deadline)
        yield ast
    finally:
        ast.stop()


@contextlib.contextmanager
def short_tempdir(prefix: str = "ccast-") -> Iterator[Path]:
    """A temporary directory with a short path (the control socket path must stay < 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
