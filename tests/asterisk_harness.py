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

``real_center()`` runs the example center so (with the test-only contexts ``TEST_CONTEXTS``), and
the helpers of the tests against it follow: the admin AMI session, a ``Watcher`` of every event,
a caller ``call_in``, the whole controller ``controller_for`` the center, ``hang_up_everything``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.app.controller import Controller, Links
from callcenter.app.plugins import PluginFactory
from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.asterisk.ami_client import AMIClient, EventGap
from callcenter.clock import ScaledClock
from callcenter.config import model as cm
from callcenter.config.load import load_config
from callcenter.config.render import render
from callcenter.errors import CallcenterError

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
        env={
            "CC_AMI_SECRET": ami_secret,
            "CC_AMI_APPLY_SECRET": ami_secret + "-apply",
            "CC_SIP_1001": "from-env-1001",
        },
    )
    a = config.asterisk
    asterisk = dataclasses.replace(
        a,
        ami=dataclasses.replace(a.ami, host="127.0.0.1", port=ami_port),
        agi=dataclasses.replace(a.agi, host="127.0.0.1", port=agi_port, bind="127.0.0.1"),
        sounds_dir=str(REPO / "ivr_prompts"),
        moh_dir=str(root / "moh"),
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


# ------------------------------------------------------------------------------------ the center in it
TEST_CONTEXTS = """; ---- added by tests/test_real_asterisk.py (test-only)
[cc-test-agents]
; (the n of "agent" is bracketed: a bare N in a pattern means any digit 2-9)
exten => _age[n]t.,1,NoOp(test phone ${EXTEN} answers)
 same => n,Answer()
 same => n,Playtones(440/500,0/500)
 same => n,Wait(60)
 same => n,Hangup()
"""

# The example center's hours: an ordinary open Monday morning, so the hours node says "open".
OPEN_MONDAY = dt.datetime(2026, 11, 16, 10, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()


@dataclass
class Center:
    asterisk: RealAsterisk
    config: cm.Config
    ami_secret: str
    agi_port: int


@contextlib.contextmanager
def real_center(
    dialplan_extra: str = TEST_CONTEXTS, *, tweak: Callable[[cm.Config], cm.Config] | None = None
) -> Iterator[Center]:
    """The example center rendered and running in a real Asterisk (``require_asterisk`` skips
    without one), with the test-only contexts ``dialplan_extra``; ``tweak`` changes the config
    before it is rendered (shorter timeouts for a test)."""
    binary = require_asterisk()
    with short_tempdir() as root:
        ami_port, agi_port = free_port(), free_port()
        secret = "t-" + secrets.token_hex(10)
        config = example_center(root, ami_port=ami_port, agi_port=agi_port, ami_secret=secret)
        if tweak is not None:
            config = tweak(config)
        music_dirs(config)
        files = rendered_files(config)
        with running_asterisk(
            files, binary=binary, root=root, ami_port=ami_port, dialplan_extra=dialplan_extra
        ) as ast:
            try:
                yield Center(ast, config, secret, agi_port)
            finally:
                keep = os.environ.get("CC_ASTERISK_KEEP_LOGS")  # a directory: logs copied there
                if keep:
                    shutil.copytree(ast.log_dir, Path(keep), dirs_exist_ok=True)


@contextlib.asynccontextmanager
async def admin(center: Center) -> AsyncIterator[AMIClient]:
    client = AMIClient(
        port=center.asterisk.ami_port,
        username=ADMIN_USER,
        secret=center.asterisk.admin_secret,
        ping_interval=0,
        reconnect=False,
    )
    await asyncio.wait_for(client.connect(), 10)
    try:
        yield client
    finally:
        await asyncio.wait_for(client.close(), 10)


async def command(client: AMIClient, cli: str) -> str:
    reply = await client.send_action(names.ACTION_COMMAND, {"Command": cli}, timeout=10)
    return "\n".join(v for k, v in reply.headers if k.lower() == "output")


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll in-process state (the controller's, a file MixMonitor writes) until ``predicate``;
    bounded. Those change with no event the test can await."""
    step = 0.05
    for _ in range(int(timeout / step) + 1):
        if predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"{what} (after {timeout} s)")


class Watcher:
    """Every event the admin user sees, kept in order; ``wait(pred)`` returns the first match
    (already seen or still to come), bounded."""

    def __init__(self, client: AMIClient) -> None:
        self.client = client
        self.seen: list[Message] = []
        self.arrived: list[float] = []  # the loop's time at each event's arrival (as ``seen``)
        self._changed = asyncio.Event()
        self._stream = client.events()
        self._task = asyncio.create_task(self._pump(), name="ami-watcher")
        self.hooks: list[Callable[[Message], Awaitable[None] | None]] = []

    async def _pump(self) -> None:
        async for item in self._stream:
            if isinstance(item, EventGap):
                continue
            self.seen.append(item)
            self.arrived.append(asyncio.get_running_loop().time())
            for hook in self.hooks:
                result = hook(item)
                if result is not None:
                    await result
            self._changed.set()

    async def wait(
        self,
        pred: Callable[[Message], bool],
        what: str,
        timeout: float = 30.0,
        *,
        after: Message | None = None,
    ) -> Message:
        """The first event matching ``pred`` (after the event ``after``, if given)."""
        i = 0 if after is None else next(n for n, m in enumerate(self.seen) if m is after) + 1
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while i < len(self.seen):
                        if pred(self.seen[i]):
                            return self.seen[i]
                        i += 1
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            names_seen = sorted({m.name or "" for m in self.seen})
            raise AssertionError(f"{what} (after {timeout} s; events seen: {names_seen})") from None

    def at(self, msg: Message) -> float:
        """When ``msg`` (one of ``seen``) arrived, on the loop's clock (as ``RtpPeer`` packets)."""
        return self.arrived[next(n for n, m in enumerate(self.seen) if m is msg)]

    def last(self) -> Message | None:
        """The latest event so far: ``wait(..., after=watcher.last())`` looks only at what follows."""
        return self.seen[-1] if self.seen else None

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@dataclass
class Caller:
    uid: str  # ;1 (the "phone" side: Wait, PlayDTMF)
    phone: str = ""  # ;1 channel name
    line: str = ""  # ;2 channel name: runs cc-inbound, the IVR, cc-hold


async def call_in(
    client: AMIClient, watcher: Watcher, did: str, keys: dict[str, str], number: str = "+12125551234"
) -> Caller:
    """Originate a caller into ``cc-inbound``; press ``keys[prompt]`` when the IVR starts playing
    a prompt whose name is the key (an AGIExecStart naming it)."""
    caller = Caller(uid="cct-" + uuid.uuid4().hex[:16])
    pressed: set[str] = set()

    async def press(msg: Message) -> None:
        if msg.name != "AGIExecStart" or not caller.line or msg.get("Channel") != caller.line:
            return
        cmd = msg.get("Command") or ""
        for prompt, digit in keys.items():
            # The IVR quotes every argument: GET DATA "/.../en/main-menu" "5000" "1"
            if f'/{prompt}"' in cmd and prompt not in pressed:
                pressed.add(prompt)
                await client.send_action(
                    names.ACTION_PLAYDTMF,
                    {"Channel": caller.phone, "Digit": digit, "Duration": "200"},
                    timeout=10,
                )

    def names_(msg: Message) -> None:
        if msg.name == "Newchannel":
            if msg.get("Uniqueid") == caller.uid:
                caller.phone = msg.get("Channel") or ""
            elif msg.get("Uniqueid") == caller.uid + "-2":
                caller.line = msg.get("Channel") or ""

    watcher.hooks += [names_, press]
    await client.send_action(
        names.ACTION_ORIGINATE,
        [
            ("Channel", f"Local/{did}@{names.CTX_INBOUND}"),
            ("Application", "Wait"),
            ("Data", "90"),
            ("CallerID", f'"Test Caller" <{number}>'),
            ("ChannelId", caller.uid),
            ("OtherChannelId", caller.uid + "-2"),
            ("Timeout", "30000"),
            ("Async", "true"),
        ],
        timeout=10,
    )
    await watcher.wait(lambda m: m.name == "Newchannel" and m.get("Uniqueid") == caller.uid + "-2", "no ;2")
    return caller


@contextlib.asynccontextmanager
async def controller_for(
    center: Center,
    dsn: str,
    run_dir: Path,
    *,
    agent_channel: str | None = None,
    plugins: Sequence[PluginFactory] = (),
    http: bool = False,
) -> AsyncIterator[Controller]:
    """The controller for ``center``, started and ready; stopped (its call log flushed) on exit.
    ``plugins``: ``standard_plugins()`` for the controller ``callcenter run`` starts (the
    supervisors' monitor, the dialer); none by default. ``http``: serve the HTTP API on a free
    loopback port (``ctl.http.port``); off by default."""
    links = Links.from_config(
        center.config,
        ami_host="127.0.0.1",
        ami_port=center.asterisk.ami_port,
        ami_user=center.config.asterisk.ami.username,
        ami_secret=center.ami_secret,
        agi_bind="127.0.0.1",
        agi_port=center.agi_port,
    )
    # from_config drops None overrides, so HTTP is set here (off, or a free port: not 8080).
    links = dataclasses.replace(links, http_host="127.0.0.1" if http else None, http_port=free_port())
    ctl = Controller(
        center.config,
        dsn=dsn,
        run_dir=run_dir,
        clock=ScaledClock(1.0, start=OPEN_MONDAY),
        links=links,
        writer_batch_delay=0.2,
        plugins=plugins,
    )
    if agent_channel is not None:
        ctl.acd.agent_channel = agent_channel
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.run(stop), name="controller")
    try:
        ready = asyncio.ensure_future(ctl.ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if not ctl.ready.is_set():
            ready.cancel()
            if task.done():
                task.result()
            raise AssertionError("controller not ready in 30 s")
        yield ctl
    finally:
        stop.set()  # the controller flushes the call log as it stops (checked in the DB below)
        await asyncio.wait_for(task, 40)


async def hang_up_everything(client: AMIClient) -> None:
    """Leave no call behind for the next test (bounded)."""
    events = await client.send_action_list(names.ACTION_CORE_SHOW_CHANNELS, timeout=10)
    for ev in events:
        chan = ev.get("Channel")
        if ev.name == "CoreShowChannel" and chan:
            with contextlib.suppress(CallcenterError):
                await client.send_action(names.ACTION_HANGUP, {"Channel": chan}, timeout=10)
