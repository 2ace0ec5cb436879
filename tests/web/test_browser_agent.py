"""A real browser (Debian's chromium through chromedriver, headless) runs the agent desktop against
the whole controller and the simulated PBX: an agent signs in, logs in, a caller dials the
center's number and goes through the IVR to sales, the screen pop shows the caller (customer
record, IVR path, last calls) as the call is offered and answered, the call ends, and the agent
gives the required disposition with notes. The disposition lands in the call log and in
``callcenter report --by disposition``. Screenshots go to ``.run/screenshots/``.

The controller and the simulator share a clock at real speed (the browser lives in real time);
every wait is bounded and waits on what the page or the database shows, never on a sleep."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.app.controller import Controller, Links
from callcenter.asterisk import names
from callcenter.clock import ScaledClock
from callcenter.commands.demo import demo_start, for_demo
from callcenter.commands.sim import start_sim
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from callcenter.sim.people import AgentProfile, Dist, Scenario
from callcenter.store import users
from callcenter.store.customers import Customer, upsert_customers
from callcenter.web.auth import hash_password
from tests.centers import REPO
from tests.fakes import SimPerson

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(400),  # chromium, the IVR's prompts and the talk run in real time
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs Debian's chromium and chromedriver (apt-get install -y chromium chromium-driver)",
    ),
]

PASSWORD = "agent desk password"
CALLER = "+12125550100"
SHOTS = REPO / ".run" / "screenshots"
TALK = 20.0  # seconds the simulated agent phone talks before it hangs up


@dataclasses.dataclass
class Desk:
    base: str
    controller: Controller
    sim: Any
    clock: ScaledClock
    loop: asyncio.AbstractEventLoop
    did: str


@pytest.fixture
async def desk(db_dsn: str, tmp_path: Path) -> AsyncIterator[Desk]:
    config = for_demo(load_config(REPO / "dialplans"), tmp_path)
    # A wrap-up long enough that a slow browser never races its timeout.
    sales = dataclasses.replace(config.queues["sales"], wrapup=900.0)
    config = dataclasses.replace(config, queues={**config.queues, "sales": sales})
    write_files(render(config), tmp_path / "asterisk")
    clock = ScaledClock(1.0, start=demo_start(config, now=time.time(), latest=None))
    sim = await start_sim(
        tmp_path / "asterisk", tmp_path, clock=clock, seed=3, sounds_dirs=(REPO / "ivr_prompts",)
    )
    links = Links.from_config(
        config, ami_host="127.0.0.1", ami_port=sim.ami_port, agi_bind="127.0.0.1", agi_port=0,
        http_host="127.0.0.1", http_port=0,
    )  # fmt: skip
    ctl = Controller(config, dsn=db_dsn, run_dir=tmp_path, clock=clock, links=links, writer_batch_delay=0.2)
    conn = await asyncpg.connect(db_dsn)
    try:
        await users.add_user(conn, "alice", "agent", hash_password(PASSWORD), agent_id="1001")
        await upsert_customers(conn, [Customer(CALLER, "Ada Lovelace", "gold", "A-1001")])
    finally:
        await conn.close()
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.run(stop))
    try:
        await asyncio.wait_for(ctl.ready.wait(), 60)
        assert ctl.agi is not None and ctl.http is not None
        phone = AgentProfile(
            "agent1001",
            answer_delay=Dist("fixed", 2.0),
            no_answer_probability=0.0,
            talk=Dist("fixed", TALK),
            wrapup=Dist("fixed", 0.0),
            agent_hangs_up=1.0,
        )
        sim.start_people(Scenario("agent-desk", agents=(phone,)), agi_port=ctl.agi.port)
        did = next(n.dialed for n in config.numbers if n.flow == "main")
        yield Desk(f"http://127.0.0.1:{ctl.http.port}", ctl, sim, clock, asyncio.get_running_loop(), did)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await sim.close()


def drive(d: Desk, place_call: Callable[[], None]) -> dict[str, Any]:
    """The agent's side, as a person would do it (runs in a thread)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Any] = {}

    def text(element_id: str) -> str:
        return str(driver.find_element(By.ID, element_id).text)

    try:
        wait = WebDriverWait(driver, 90)
        driver.get(d.base + "/agent")
        wait.until(ec.visibility_of_element_located((By.ID, "name")))
        driver.save_screenshot(str(SHOTS / "agent-0-sign-in.png"))
        driver.find_element(By.ID, "name").send_keys("alice")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "signin-submit").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "state-name"), "Logged out"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "live"), "live"))
        seen["who"] = text("who")
        driver.find_element(By.ID, "login").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "state-name"), "Ready"))
        driver.save_screenshot(str(SHOTS / "agent-1-ready.png"))
        seen["pause_reasons"] = [o.text for o in Select(driver.find_element(By.ID, "pause-reason")).options]

        place_call()
        # The screen pop: the caller's name from the directory, the queue, the IVR path.
        wait.until(ec.text_to_be_present_in_element((By.ID, "caller"), "Ada Lovelace"))
        seen["stage_at_pop"] = driver.find_element(By.ID, "stage").get_attribute("data-stage")
        wait.until(ec.text_to_be_present_in_element_attribute((By.ID, "stage"), "data-stage", "connected"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "ivr-path"), "main-menu"))
        driver.save_screenshot(str(SHOTS / "agent-2-on-call.png"))
        seen["caller_number"] = text("caller-number")
        seen["queue"] = text("queue")
        seen["customer"] = text("customer")
        seen["ivr_path"] = text("ivr-path")
        seen["during_visible"] = driver.find_element(By.ID, "during").is_displayed()

        # Hold from the desk: the caller hears music, the button resumes the call.
        driver.find_element(By.ID, "hold").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "hold"), "Resume call"))
        wait.until(ec.visibility_of_element_located((By.ID, "held-note")))
        seen["transfer_disabled_on_hold"] = not driver.find_element(By.ID, "transfer-go").is_enabled()
        driver.save_screenshot(str(SHOTS / "agent-2b-on-hold.png"))
        driver.find_element(By.ID, "hold").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "Back with the caller"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "hold"), "Hold"))
        seen["held_note_after"] = driver.find_element(By.ID, "held-note").is_displayed()

        # The caller is talked to; the phone hangs up: wrap-up, a disposition is required.
        wait.until(ec.text_to_be_present_in_element_attribute((By.ID, "stage"), "data-stage", "wrap_up"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "state-name"), "Wrap-up"))
        seen["ready_disabled_in_wrap_up"] = not driver.find_element(By.ID, "ready").is_enabled()
        seen["codes"] = [o.text for o in Select(driver.find_element(By.ID, "disposition-code")).options]
        # The customer wants a call tomorrow: the number is the caller's, prefilled.
        seen["callback_number"] = driver.find_element(By.ID, "callback-number").get_attribute("value")
        Select(driver.find_element(By.ID, "callback-in")).select_by_visible_text("1 day")
        driver.find_element(By.ID, "callback-go").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "Callback scheduled"))
        driver.find_element(By.ID, "disposition-save").click()  # nothing chosen: refused
        wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "choose a disposition"))
        Select(driver.find_element(By.ID, "disposition-code")).select_by_visible_text("Sale made")
        driver.find_element(By.ID, "notes").send_keys("Two-year fixed plan; send the contract by e-mail.")
        driver.save_screenshot(str(SHOTS / "agent-3-wrap-up.png"))
        driver.find_element(By.ID, "disposition-save").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "message"), "Saved: Sale made"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "state-name"), "Ready"))
        driver.save_screenshot(str(SHOTS / "agent-4-done.png"))
        seen["call_id"] = text("call-id")
        # Pause with a reason, then back to ready, all from the keyboard-reachable controls.
        Select(driver.find_element(By.ID, "pause-reason")).select_by_visible_text("Lunch")
        driver.find_element(By.ID, "pause").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "state-name"), "Paused (lunch)"))
        driver.find_element(By.ID, "ready").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "state-name"), "Ready"))
        return seen
    except Exception:
        driver.save_screenshot(str(SHOTS / "agent-failed.png"))
        raise
    finally:
        driver.quit()


async def test_an_agent_takes_a_call_from_screen_pop_to_disposition(desk: Desk, db_dsn: str) -> None:
    loop = asyncio.get_running_loop()
    person = SimPerson({"language-menu": ["1"], "main-menu": ["1"]}, hang_up_on_hold=False)

    async def dial() -> None:
        desk.sim.pbx.inbound_call(
            desk.did, caller_num=CALLER, caller_name="Ada Lovelace", context=names.CTX_INBOUND, owner=person
        )

    def place_call() -> None:
        asyncio.run_coroutine_threadsafe(dial(), loop).result(10)

    seen = await asyncio.wait_for(asyncio.to_thread(drive, desk, place_call), 300)
    assert seen["who"] == "alice · agent 1001"
    assert "Lunch" in seen["pause_reasons"] and "Missed call (RONA)" not in seen["pause_reasons"]
    assert seen["stage_at_pop"] in ("offered", "connected")
    assert seen["caller_number"] == CALLER and seen["queue"] == "Sales"
    assert "A-1001" in seen["customer"] and "gold" in seen["customer"]
    assert "main-menu" in seen["ivr_path"] and "lookup" in seen["ivr_path"]
    assert seen["during_visible"] and seen["ready_disabled_in_wrap_up"]
    assert seen["transfer_disabled_on_hold"] and not seen["held_note_after"]
    assert seen["codes"][1:] == [
        "Sale made", "Quote sent, no sale yet", "Not interested", "Needs a follow-up", "Wrong number",
    ]  # fmt: skip
    assert seen["callback_number"] == CALLER
    call_id = seen["call_id"]
    callbacks = [c for c in desk.controller.acd.snapshot()["calls"] if c.startswith(f"{call_id}-cb")]
    assert len(callbacks) == 1 and desk.controller.acd.call_state(callbacks[0]) == "retry"

    # The disposition lands in the call log (the writer flushes on its own; bounded wait)...
    conn = await asyncpg.connect(db_dsn)
    try:
        row = None
        deadline = time.monotonic() + 30
        while row is None and time.monotonic() < deadline:
            row = await conn.fetchrow(
                "SELECT code, label, notes, outcome, given_by, queue FROM call_dispositions"
                " WHERE call_id = $1",
                call_id,
            )
            if row is None:
                await desk.controller.writer.flush(timeout=10)
        assert row is not None
        assert dict(row) == {
            "code": "sale",
            "label": "Sale made",
            "notes": "Two-year fixed plan; send the contract by e-mail.",
            "outcome": "given",
            "given_by": "alice",
            "queue": "sales",
        }
        answered = await conn.fetchval("SELECT agent_id FROM calls WHERE call_id = $1", call_id)
        assert answered == "1001"
    finally:
        await conn.close()
    # ...and in `callcenter report --by disposition`.
    t = desk.clock.now()
    window = ["--from", _iso(t - 3600), "--to", _iso(t + 60)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "report", "--by", "disposition", *window, "--format", "json",
        env={**os.environ, "DATABASE_URL": db_dsn},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    rows = json.loads(out)
    assert {"dimension": "queue", "name": "sales", "code": "sale", "label": "Sale made", "calls": 1,
            "share": 1.0} in rows  # fmt: skip
    assert {"dimension": "agent", "name": "1001", "code": "sale", "label": "Sale made", "calls": 1,
            "share": 1.0} in rows  # fmt: skip


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()
