"""The private cluster is shared between processes: only the last user out stops it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from callcenter.store.pgcluster import PrivateCluster

pytestmark = pytest.mark.timeout(600)  # several real PostgreSQL starts; a loaded machine is slow

_DEADLINE = 300.0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}


class _Serve:
    """``callcenter db serve`` in a process of its own, its output read by a thread."""

    def __init__(self, run_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter", "--run-dir", str(run_dir), "db", "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.proc.stdout.close()
        self.lines.put(None)

    def wait_for(self, prefix: str) -> None:
        deadline = time.monotonic() + _DEADLINE
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(prefix):
                return
        pytest.fail(f"no {prefix!r} line; output so far:\n" + "".join(self.seen))

    def finish(self, sig: int) -> str:
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=_DEADLINE)
        return "".join(self.seen + self._rest())

    def _rest(self) -> list[str]:
        rest: list[str] = []
        while (line := self.lines.get(timeout=_DEADLINE)) is not None:
            rest.append(line)
        return rest

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=_DEADLINE)
            self._rest()  # until the reader has closed the pipe


def _cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callcenter", "--run-dir", str(run_dir), *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=_DEADLINE,
        check=False,
    )


def _up(run_dir: Path) -> bool:
    return PrivateCluster(run_dir / "pg").running_pid() is not None


def test_a_command_leaves_the_cluster_of_a_running_server_running() -> None:
    run_dir = Path("/tmp") / f"cc-share-{os.getpid()}"
    first = second = None
    try:
        first = _Serve(run_dir)
        first.wait_for("ready:")
        pid = PrivateCluster(run_dir / "pg").running_pid()

        # Another command uses the running cluster and leaves it as it found it.
        res = _cli(run_dir, "db", "status")
        assert res.returncode == 0, res.stderr
        assert "applied" in res.stdout
        assert PrivateCluster(run_dir / "pg").running_pid() == pid

        # A second server shares it; the first, leaving, does not stop it under the second.
        second = _Serve(run_dir)
        second.wait_for("ready:")
        assert "already running, shared" in "".join(second.seen)
        out = first.finish(signal.SIGINT)
        assert first.proc.returncode == 130, out
        assert f"left running for process(es) {second.proc.pid}" in out
        assert PrivateCluster(run_dir / "pg").running_pid() == pid

        # The second is killed outright: its reference goes with it, so the next user is
        # the last one and stops the server when it leaves.
        second.kill()
        assert _up(run_dir)
        res = _cli(run_dir, "db", "status")
        assert res.returncode == 0, res.stderr
        assert not _up(run_dir)
    finally:
        for s in (first, second):
            if s is not None:
                s.kill()
        PrivateCluster(run_dir / "pg").destroy()


def test_attach_and_detach_count_users_in_one_process(tmp_path: Path) -> None:
    base = Path("/tmp") / f"cc-attach-{os.getpid()}"
    a, b = PrivateCluster(base), PrivateCluster(base)
    try:
        assert a.attach() is True
        assert b.attach() is False  # found running
        assert a.detach() == [os.getpid()]  # b still uses it
        assert b.running_pid() is not None
        assert b.detach() == []
        assert b.running_pid() is None
    finally:
        PrivateCluster(base).destroy()
