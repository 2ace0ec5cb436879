"""`callcenter run --sim` carries calls like the demo's controller (the prompts reach the simulated
PBX, so callers get through the IVR to an agent), and says where its API listens so that
`callcenter agent ...` finds it under the run dir."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncpg
import pytest

from tests.centers import REPO

pytestmark = pytest.mark.timeout(600)


async def _answered(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM calls WHERE answered_at IS NOT NULL AND agent_id IS NOT NULL"
        )
        return n
    finally:
        await conn.close()


def test_run_sim_calls_reach_agents_and_agent_status_finds_the_controller(
    db_dsn: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "DATABASE_URL": db_dsn}
    env.pop("CALLCENTER_API", None)
    env.pop("CALLCENTER_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter", "run", "--sim", "--speed", "30", "--http", "127.0.0.1:0",
         "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
        start_new_session=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        proc.stdout.close()
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while not any("controller ready" in s for s in seen):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(seen)
            seen.append(line)
        assert (run_dir / "controller.json").is_file()
        # `agent status` reaches this controller on its random port (it asks for a token).
        res = subprocess.run(
            [sys.executable, "-m", "callcenter", "agent", "status", "--run-dir", str(run_dir)],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
        )  # fmt: skip
        assert res.returncode == 1
        assert "needs an API token" in res.stderr, res.stderr
        # A simulated caller gets through the IVR's prompts and a queue to an agent.
        while asyncio.run(_answered(db_dsn)) == 0:
            assert time.monotonic() < deadline, "no call answered by an agent under run --sim"
            assert proc.poll() is None, "".join(seen)
            time.sleep(1.0)  # polling the call log (a condition with a deadline)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        assert not (run_dir / "controller.json").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        while lines.get(timeout=60) is not None:
            pass
