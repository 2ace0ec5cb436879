"""Shell: a private, throwaway PostgreSQL cluster, the embedded default database.

Started from the PostgreSQL server binaries on the machine (``$PG_BINDIR``, ``pg_config --bindir``,
or ``/usr/lib/postgresql/<version>/bin``, newest first), it listens on a Unix socket only, in a
directory of its own, and is stopped by ``stop()`` (also on Ctrl-C: callers use it as a context
manager). PostgreSQL refuses to run as root, so when we are root the server runs as the
``postgres`` (or ``nobody``) user and owns its directory.

Several processes of ours share one cluster (a running controller and ``callcenter report``, say):
each one that uses it holds an exclusive ``flock`` on a file of its own under ``users/`` for as long
as it does (``attach()`` .. ``detach()``). A process starts the server only when none runs, and
stops it on detach only when no other user's file is still locked; the kernel drops the lock of a
process killed outright, so a SIGKILL never leaves a reference behind. ``start.lock`` serialises
the decisions to start and to stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

from callcenter.errors import ClusterError, PostgresNotFoundError

_NEEDED = ("initdb", "pg_ctl", "postgres")
DEFAULT_DB = "callcenter"
DEFAULT_USER = "callcenter"
PORT = 5432


def _has_server(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in _NEEDED)


def find_pg_bindir() -> Path:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` live, or PostgresNotFoundError saying what to do."""
    candidates: list[Path] = []
    env = os.environ.get("PG_BINDIR")
    if env:
        candidates.append(Path(env))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(  # noqa: S603 - fixed argv, no caller input
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))

    def version_key(p: Path) -> float:
        try:
            return float(p.parent.name)
        except ValueError:
            return 0.0

    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version_key, reverse=True))
    for cand in candidates:
        if _has_server(cand):
            return cand
    looked = ", ".join(str(c) for c in candidates) or "nowhere"
    raise PostgresNotFoundError(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; looked in "
        f"{looked}. Install them (Debian: apt-get install postgresql) or set PG_BINDIR, "
        "or point DATABASE_URL at an existing PostgreSQL."
    )


def _server_user() -> pwd.struct_passwd | None:
    """The user to run the server as when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ClusterError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


class PrivateCluster:
    """A PostgreSQL cluster under ``base`` (data/, sock/, server.log), Unix socket only."""

    def __init__(self, base: Path, *, bindir: Path | None = None, dbname: str = DEFAULT_DB) -> None:
        self.base = Path(base).absolute()
        self.bindir = bindir or find_pg_bindir()
        self.dbname = dbname
        self.datadir = self.base / "data"
        self.sockdir = self.base / "sock"
        self.logfile = self.base / "server.log"
        self._user = _server_user()
        self.usersdir = self.base / "users"
        self._use: IO[bytes] | None = None
        self._use_path: Path | None = None

    # -- helpers -----------------------------------------------------------------------------
    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        try:
            res: subprocess.CompletedProcess[str] = subprocess.run(  # noqa: S603 - our own argv
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd="/",
                start_new_session=True,  # Ctrl-C in the terminal must not reach the server
                **kwargs,  # type: ignore[call-overload]
            )
            return res
        except (OSError, subprocess.SubprocessError) as exc:
            raise ClusterError(f"{argv[0]} could not run: {exc}") from exc

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    @property
    def dsn(self) -> str:
        return f"postgresql://{DEFAULT_USER}@/{self.dbname}?host={quote(str(self.sockdir))}&port={PORT}"

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{DEFAULT_USER}@/{dbname}?host={quote(str(self.sockdir))}&port={PORT}"

    def running_pid(self) -> int | None:
        """The postmaster's pid if a server of this data directory is alive."""
        pidfile = self.datadir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    # -- lifecycle ---------------------------------------------------------------------------
    def init(self) -> bool:
        """Create the cluster if absent. Returns True when it was created now."""
        if (self.datadir / "PG_VERSION").exists():
            return False
        for d in (self.base, self.sockdir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
            self._own(d)
        if self.datadir.exists():  # a half-made data dir from an interrupted initdb
            shutil.rmtree(self.datadir)
        res = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            DEFAULT_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if res.returncode != 0:
            raise ClusterError(f"initdb failed in {self.datadir}:\n{res.stderr.strip()}")
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# callcenter private cluster\n"
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{self.sockdir}'\n"
                f"port = {PORT}\n"
                "fsync = on\n"
                "synchronous_commit = on\n"
                "max_connections = 200\n"
                "shared_buffers = 128MB\n"
                "logging_collector = off\n"
            )
        return True

    def start(self) -> str:
        """Init if needed and start; returns the DSN of the ``callcenter`` database."""
        self.init()
        if self.running_pid() is not None:
            # Left behind by a run that was killed outright: stop it and start clean.
            self._stop_server(mode="immediate")
        # The log file must be writable by the server user.
        self.logfile.touch(exist_ok=True)
        self._own(self.logfile)
        res = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            "60",
            "start",
        )
        if res.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = "\n".join(self.logfile.read_text().splitlines()[-15:])
            raise ClusterError(f"PostgreSQL would not start in {self.datadir}:\n{res.stderr}\n{tail}")
        self._ensure_database()
        return self.dsn

    def _ensure_database(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.dbname):
            raise ClusterError(f"database name {self.dbname!r} must match [a-z_][a-z0-9_]*")
        psql = self.bindir / "psql"
        if not psql.exists():
            psql = Path(shutil.which("psql") or "psql")

        def run_sql(flag: str, sql: str) -> subprocess.CompletedProcess[str]:
            connect = ("-h", str(self.sockdir), "-p", str(PORT), "-U", DEFAULT_USER, "-d", "postgres")
            return self._run(str(psql), *connect, flag, sql)

        # The name is checked above; psql takes no bind parameters on the command line.
        res = run_sql("-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{self.dbname}'")  # noqa: S608
        if res.returncode != 0:
            raise ClusterError(f"cannot query the private cluster: {res.stderr.strip()}")
        if res.stdout.strip() != "1":
            res = run_sql("-c", f'CREATE DATABASE "{self.dbname}"')
            if res.returncode != 0:
                raise ClusterError(f"cannot create database {self.dbname}: {res.stderr.strip()}")

    def _stop_server(self, *, mode: str) -> None:
        res = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-m",
            mode,
            "-w",
            "-t",
            "60",
            "stop",
        )
        if res.returncode != 0 and self.running_pid() is not None:
            pid = self.running_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server if it runs. Safe to call twice."""
        if self.running_pid() is not None:
            self._stop_server(mode=mode)

    # -- sharing between processes ---------------------------------------------------------
    @contextlib.contextmanager
    def _decision_lock(self) -> Iterator[None]:
        """Held while a process decides to start or stop the server (blocks the others)."""
        self.base.mkdir(parents=True, exist_ok=True)
        with (self.base / "start.lock").open("ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def other_users(self) -> list[int]:
        """Pids of the other processes of ours using this cluster now; drops files of dead ones."""
        pids: list[int] = []
        if not self.usersdir.is_dir():
            return pids
        for path in sorted(self.usersdir.glob("*.lock")):
            if path == self._use_path:
                continue
            try:
                fh = path.open("rb")
            except FileNotFoundError:
                continue
            with fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    with contextlib.suppress(ValueError):
                        pids.append(int(path.stem.split("-")[0]))
                    continue
                path.unlink(missing_ok=True)  # its process is gone (exited or was killed)
        return pids

    def attach(self) -> bool:
        """Use the cluster: start it unless it already runs. True when this call started it."""
        if self._use is not None:
            raise ClusterError("this cluster object is already attached")
        with self._decision_lock():
            self.usersdir.mkdir(parents=True, exist_ok=True)
            path = self.usersdir / f"{os.getpid()}-{id(self):x}.lock"
            fh = path.open("wb")
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._use, self._use_path = fh, path
            attached = False
            try:  # any failure, Ctrl-C included, leaves no claim on the cluster behind
                started = not (self.running_pid() is not None and self._answers())
                if started:
                    self.start()
                else:
                    self._ensure_database()
                attached = True
                return started
            finally:
                if not attached:
                    self._release_use()

    def detach(self) -> list[int]:
        """Stop using the cluster; stop the server when no other process uses it.

        Returns the pids of the processes still using it (empty: the server was stopped)."""
        if self._use is None:
            return []
        with self._decision_lock():
            self._release_use()
            others = self.other_users()
            if not others:
                self.stop()
            return others

    def _release_use(self) -> None:
        if self._use_path is not None:
            self._use_path.unlink(missing_ok=True)
        if self._use is not None:
            self._use.close()
        self._use = self._use_path = None

    def _answers(self) -> bool:
        """Whether the running server accepts connections (``pg_isready``)."""
        isready = self.bindir / "pg_isready"
        if not isready.exists():
            return True
        res = self._run(str(isready), "-h", str(self.sockdir), "-p", str(PORT), "-t", "10")
        return res.returncode == 0

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PrivateCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
