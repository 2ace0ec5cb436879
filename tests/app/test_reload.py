"""A new configuration taken live, as an operator does it: ``callcenter apply`` typed in a shell
(a subprocess) against a running controller on the simulated PBX, with a call ringing an agent.

The controller, the simulator and the test share one autojump clock. The CLI runs in a thread-pool
job, so simulated time stands still while it runs (the clock never jumps during a pool job), and
the call that was ringing when the new config came keeps its ring timeout; the next call gets
the new one. SIGHUP to the process does the same; a config with a problem changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from callcenter.acd import agents as ag
from callcenter.app.controller import Controller, Links
from callcenter.app.plugins import standard_plugins
from callcenter.asterisk import names
from callcenter.clock import AutojumpClock, RealClock
from callcenter.commands.run import reload_on_sighup
from callcenter.config import model as cm
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from callcenter.config.version import config_version
from callcenter.ports import QueuedCall
from callcenter.sim.people import AgentProfile, Dist, Scenario
from callcenter.sim.server import SimulatedPBX
from callcenter.store import users
from callcenter.web.auth import hash_password
from tests.centers import REPO
from tests.fakes import bearer, http_exchange, http_request, http_split, within

DEADLINE = 900.0  # simulated seconds for any one condition


@dataclass
class Live:
    controller: Controller
    sim: SimulatedPBX
    clock: AutojumpClock
    conf: Path
    out: Path
    token: str
    serial: int = 0

    def edit(self, path: str, old: str, new: str) -> None:
        f = self.conf / path
        text = f.read_text()
        assert old in text, (path, old)
        f.write_text(text.replace(old, new, 1))

    def apply(self, *extra: str) -> subprocess.CompletedProcess[str]:
        assert self.controller.http is not None
        env = {**os.environ, "CALLCENTER_TOKEN": self.token}
        env.pop("CALLCENTER_URL", None)
        return subprocess.run(
            [sys.executable, "-m", "callcenter", "--run-dir", str(self.out.parent), "apply", str(self.conf),
             "--prompts", str(REPO / "ivr_prompts"), "--out", str(self.out), "--allow-demo-secrets",
             "--controller", f"http://127.0.0.1:{self.controller.http.port}", *extra],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    async def apply_async(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """``apply`` in a thread-pool job: the autojump clock holds still until it returns."""
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.apply(*extra))

    async def status(self) -> dict[str, object]:
        assert self.controller.http is not None
        request = http_request("/api/status", headers=bearer(self.token))
        raw = await http_exchange(self.controller.http.port, request)
        code, body = http_split(raw)
        assert code == 200, body
        data = json.loads(body)
        assert isinstance(data, dict)
        return data

    async def call(self, queue: str) -> tuple[str, object]:
        self.serial += 1
        chan = self.sim.pbx.inbound_call("s", caller_num=f"+1555010{self.serial:04d}", context=names.CTX_HOLD)
        call_id = f"reload-{self.serial}"
        await self.controller.acd.enqueue(
            QueuedCall(call_id, chan.name, queue, uniqueid=chan.uniqueid, redirect_to_hold=False)
        )
        return call_id, chan

    async def until_status(self, agent_id: str, status: ag.Status) -> float:
        """When ``agent_id`` entered ``status`` (simulated seconds), once it has."""

        async def wait() -> float:
            while (st := self.controller.acd.agent_state(agent_id)).status is not status:
                await self.clock.sleep(0.25)
            return float(st.since)

        return await within(wait(), timeout=DEADLINE, clock=self.clock)


@pytest.fixture
async def live(
    db_dsn: str, tmp_path: Path, autojump_clock: AutojumpClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Live]:
    monkeypatch.delenv("CC_AMI_SECRET", raising=False)
    conf = tmp_path / "dialplans"
    shutil.copytree(REPO / "dialplans", conf)
    center = conf / "center.yaml"
    center.write_text(
        center.read_text().replace("/var/spool/asterisk/monitor/callcenter", str(tmp_path / "recordings"))
    )
    prompts = REPO / "ivr_prompts"
    first = load_config(conf, prompts_dir=prompts)
    write_files(render(first), tmp_path / "asterisk")
    phones = tuple(  # every phone rings and nobody answers: each offer ends in a RONA
        AgentProfile(a.endpoint, answer_delay=Dist("fixed", 1.0), no_answer_probability=1.0)
        for a in first.agents.values()
    )
    sim = SimulatedPBX(
        tmp_path / "asterisk", clock=autojump_clock, seed=3, ami_port=0, agi_host="127.0.0.1",
        recordings_dir=tmp_path / "recordings", scenario=Scenario("reload", agents=phones),
    )  # fmt: skip
    await sim.start()
    # What `apply` reads: the example center, its AMI at the simulator.
    center.write_text(re.sub(r"port: 5038", f"port: {sim.ami_port}", center.read_text(), count=1))
    config = load_config(conf, prompts_dir=prompts)

    def source() -> cm.Config:
        return load_config(conf, prompts_dir=prompts)

    links = Links.from_config(
        config, ami_host="127.0.0.1", ami_port=sim.ami_port, agi_bind="127.0.0.1", agi_port=0,
        http_host="127.0.0.1", http_port=0,
    )  # fmt: skip
    ctl = Controller(
        config, dsn=db_dsn, run_dir=tmp_path, clock=autojump_clock, links=links,
        plugins=standard_plugins(), source=source,
    )  # fmt: skip
    conn = await asyncpg.connect(db_dsn)
    try:
        await users.add_user(conn, "ops", "admin", hash_password("ops-password-1"))
        token = await users.issue_token(conn, "ops")
    finally:
        await conn.close()
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.run(stop))
    try:
        await asyncio.wait_for(ctl.ready.wait(), 60)
        yield Live(ctl, sim, autojump_clock, conf, tmp_path / "etc-asterisk", token)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await sim.close()


async def test_apply_changes_the_ring_timeout_of_the_next_call_with_a_call_in_flight(live: Live) -> None:
    ctl = live.controller
    before = (await live.status())["config_version"]
    assert before == config_version(ctl.config)
    assert ctl.config.queues["support"].ring_timeout == 15
    await ctl.acd.login("1003")  # support; the phone rings and nobody answers
    first, first_chan = await live.call("support")
    ring_first = await live.until_status("1003", ag.Status.RINGING)

    # While the first call rings, the operator raises support's ring timeout to 40 s and applies.
    live.edit("acd.yaml", "wrapup: 20\n    recording: on_demand\n    ring_timeout: 15",
              "wrapup: 20\n    recording: on_demand\n    ring_timeout: 40")  # fmt: skip
    done = await live.apply_async()
    assert done.returncode == 0, done.stderr
    version = config_version(load_config(live.conf, prompts_dir=REPO / "ivr_prompts"))
    assert f"apply: config version {version} is live on the controller" in done.stdout, done.stdout
    assert version != before
    assert (await live.status())["config_version"] == version
    assert ctl.config.queues["support"].ring_timeout == 40
    assert (live.out / "extensions.conf").is_file()

    # The call that was ringing keeps the timeout it was offered with, and is not dropped.
    rona_first = await live.until_status("1003", ag.Status.NOT_READY)
    assert 14.0 <= rona_first - ring_first <= 16.0
    assert ctl.acd.call_state(first) == "waiting"
    live.sim.pbx.remote_hangup(first_chan)

    # The next call rings for the new 40 s.
    await ctl.acd.login("1004")
    await live.call("support")
    ring_next = await live.until_status("1004", ag.Status.RINGING)
    rona_next = await live.until_status("1004", ag.Status.NOT_READY)
    assert 39.0 <= rona_next - ring_next <= 41.0


async def test_a_config_with_a_problem_changes_nothing(live: Live) -> None:
    ctl = live.controller
    before = ctl.config_version
    live.edit("acd.yaml", "ring_timeout: 15", "ring_timeout: soon")
    done = await live.apply_async()
    assert done.returncode == 2
    assert "acd.yaml" in done.stderr and "ring_timeout" in done.stderr, done.stderr
    assert not live.out.exists()  # nothing rendered, Asterisk not reloaded
    assert ctl.config_version == before and (await live.status())["config_version"] == before
    # The controller refuses it on its own too (an API client, or SIGHUP, with the broken YAML).
    assert ctl.http is not None
    raw = await http_exchange(
        ctl.http.port, http_request("/api/config/reload", method="POST", headers=bearer(live.token))
    )
    code, body = http_split(raw)
    assert code == 422
    err = json.loads(body)["error"]
    assert err["code"] == "validation_error" and any("ring_timeout" in p for p in err["problems"])
    assert ctl.config_version == before
    assert ctl.acd.config.queues["sales"].ring_timeout == 15


async def test_only_an_admin_reloads(live: Live, db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await users.add_user(conn, "sup", "supervisor", hash_password("sup-password-1"), queues=["sales"])
        token = await users.issue_token(conn, "sup")
    finally:
        await conn.close()
    assert live.controller.http is not None
    raw = await http_exchange(
        live.controller.http.port, http_request("/api/config/reload", method="POST", headers=bearer(token))
    )
    assert http_split(raw)[0] == 403


async def test_sighup_reloads_the_running_controller(live: Live) -> None:
    ctl = live.controller
    before = ctl.config_version
    live.edit("center.yaml", "pin_attempts: 5", "pin_attempts: 3")
    remove = reload_on_sighup(asyncio.get_running_loop(), ctl)
    try:
        os.kill(os.getpid(), signal.SIGHUP)

        async def reloaded() -> None:
            while ctl.config_version == before:
                await live.clock.sleep(0.25)

        await within(reloaded(), timeout=DEADLINE, clock=live.clock)
    finally:
        remove()
    assert ctl.config.security.pin_attempts == 3
    assert ctl.config_version == config_version(load_config(live.conf, prompts_dir=REPO / "ivr_prompts"))


def test_the_controller_takes_its_ami_settings(tmp_path: Path) -> None:
    """What the controller builds from the config (no link opened): its AMI client's timeouts and
    liveness pings, and each queue's service-level target on the wallboard."""
    base = load_config(REPO / "dialplans", prompts_dir=REPO / "ivr_prompts")
    ami = dataclasses.replace(base.asterisk.ami, connect_timeout=3.0, action_timeout=7.0, ping_interval=11.0)
    sales = dataclasses.replace(base.queues["sales"], sl_percent=65.0, sl_seconds=25.0)
    config = dataclasses.replace(
        base,
        asterisk=dataclasses.replace(base.asterisk, ami=ami),
        queues={**base.queues, "sales": sales},
    )
    ctl = Controller(
        config,
        dsn="postgresql:///unused",
        run_dir=tmp_path,
        clock=RealClock(),
        links=Links.from_config(config),
    )
    assert (ctl.ami.connect_timeout, ctl.ami.action_timeout, ctl.ami.ping_interval) == (3.0, 7.0, 11.0)
    (view,) = [q for q in ctl.snapshot().queues if q.name == "sales"]
    assert (view.sl_target_fraction, view.sl_target_seconds) == (0.65, 25.0)
