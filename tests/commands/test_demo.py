"""`callcenter demo` end to end in accelerated time: the report agrees with the call log, every
simulated call has exactly one row, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.centers import REPO


def _demo_argv(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "callcenter", "--run-dir", str(run_dir), "demo",
        "--config", str(REPO / "dialplans"), "--prompts", str(REPO / "ivr_prompts"),
        "--plain", *extra,
    ]  # fmt: skip


async def _call_log(dsn: str) -> tuple[list[asyncpg.Record], int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT queue, count(*) AS offered, count(answered_at) AS answered FROM calls "
            "WHERE queue IS NOT NULL AND direction IS DISTINCT FROM 'outbound' GROUP BY queue"
        )
        total = await conn.fetchval("SELECT count(*) FROM calls WHERE direction IS DISTINCT FROM 'outbound'")
        undisposed = await conn.fetchval("SELECT count(*) FROM calls WHERE disposition IS NULL")
    finally:
        await conn.close()
    return rows, total, undisposed


def test_short_demo_report_matches_the_call_log(db_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": db_dsn}
    res = subprocess.run(
        _demo_argv(tmp_path / "run", "--minutes", "15", "--speed", "120", "--scenario", "smoke",
                   "--seed", "3"),
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "controller ready" in out and "Queues, the whole run" in out
    assert re.search(r"demo: wallboard \(no sign-in\) http://127\.0\.0\.1:\d+/wallboard", out), out
    assert re.search(r"supervisor console http://\S+/supervisor: sign in as demo-supervisor / \S+ ", out), out
    m = re.search(
        r"call log: (\d+) calls recorded; the simulator placed (\d+) inbound calls; "
        r"duplicate rows (\d+); calls without a disposition (\d+)",
        out,
    )
    assert m, out
    recorded, placed, dupes, open_calls = map(int, m.groups())
    assert placed > 5, out  # the smoke scenario places calls on every DID
    assert recorded == placed
    assert dupes == 0 and open_calls == 0
    html = re.search(r"HTML report written to (\S+)", out)
    assert html and Path(html.group(1)).is_file()
    page = Path(html.group(1)).read_text()
    assert page.count("<svg") == 4
    assert "each queue against its own target" in page
    assert not re.search(r"\d\.\d{4,}", page.split("<h2>", 1)[1])  # the tables' figures are rounded
    # The printed report agrees with the call log in the database.
    rows, total, undisposed = asyncio.run(_call_log(db_dsn))
    assert total == placed and undisposed == 0
    table = out[out.index("Queues, the whole run") :]
    for r in rows:
        line = next(ln for ln in table.splitlines() if f" {r['queue']} " in ln)
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        assert int(cells[1]) == r["offered"], line
        assert int(cells[2]) == r["answered"], line
    assert not list((tmp_path / "run" / "reports").glob("*.tmp"))


async def _attempts_by_campaign(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT campaign_id, count(*) AS n FROM campaign_attempts GROUP BY campaign_id"
        )
    finally:
        await conn.close()
    return {r["campaign_id"]: r["n"] for r in rows}


def test_a_campaign_disabled_in_the_config_places_no_call_in_a_demo(db_dsn: str, tmp_path: Path) -> None:
    conf = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", conf)
    campaigns = conf / "campaigns.yaml"
    text = campaigns.read_text()
    assert "    name: Payment reminders\n" in text
    campaigns.write_text(
        text.replace("    name: Payment reminders\n", "    name: Payment reminders\n    enabled: false\n")
    )
    argv = _demo_argv(
        tmp_path / "run", "--minutes", "30", "--speed", "240", "--scenario", "smoke", "--seed", "3"
    )
    argv[argv.index(str(REPO / "dialplans"))] = str(conf)
    env = {**os.environ, "DATABASE_URL": db_dsn}
    res = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env, cwd=REPO, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    attempts = asyncio.run(_attempts_by_campaign(db_dsn))
    assert attempts.get("renewals", 0) > 0, (attempts, res.stdout)
    assert "reminders" not in attempts, attempts


def _postgres_pids_for(datadir: Path) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [
        int(line.split()[0])
        for line in out.stdout.splitlines()[1:]
        if "postgres" in line and str(datadir) in line
    ]


def test_ctrl_c_stops_the_demo_cleanly_and_a_second_demo_works() -> None:
    run_dir = Path("/tmp") / f"cc-demo-ctrlc-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    try:
        for attempt in range(2):
            proc = subprocess.Popen(
                _demo_argv(run_dir, "--minutes", "60", "--speed", "60", "--scenario", "smoke"),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                start_new_session=True,
            )  # fmt: skip
            assert proc.stdout is not None
            seen: list[str] = []
            for line in proc.stdout:
                seen.append(line)
                if "controller ready" in line:
                    break
            assert any("controller ready" in s for s in seen), "".join(seen)
            assert _postgres_pids_for(run_dir / "pg" / "data")
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal
            rest = proc.communicate(timeout=120)[0]
            text = "".join(seen) + rest
            assert proc.returncode == 130, f"attempt {attempt}: {text}"
            assert "interrupted" in text and "private cluster stopped" in text
            assert "Traceback" not in text
            assert _postgres_pids_for(run_dir / "pg" / "data") == []
            assert not list(run_dir.rglob("*.tmp"))
    finally:
        from callcenter.store.pgcluster import PrivateCluster

        PrivateCluster(run_dir / "pg").destroy()
