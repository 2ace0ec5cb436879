"""The people's screens in a real browser (Debian's chromium through chromedriver, headless)
against the whole controller and the simulated PBX, its clock running ten times faster than the
wall (as in the demo): the wallboard filled on first paint and updated when calls arrive, at
1920x1080 and 1280x720 without scrolling; a supervisor signs in, sees the grid fill, and starts a
listen-in from the console, which rings the supervisor's own (simulated) phone. Screenshots go to
``.run/screenshots/``."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from callcenter.app.controller import Controller, Links, login_all
from callcenter.app.plugins import standard_plugins
from callcenter.clock import RealClock, ScaledClock
from callcenter.commands.demo import DEMO_PINS, demo_start, for_demo
from callcenter.commands.sim import center_scenario, start_sim
from callcenter.config.load import load_config
from callcenter.config.render import render, write_files
from callcenter.reporting import feed
from callcenter.reporting.wallboard import QueueView, Snapshot
from callcenter.store import audit, users
from callcenter.web.auth import hash_password
from callcenter.web.feed import FeedStreams
from callcenter.web.http import HTTPServer, Router
from callcenter.web.pages import page, register_pages
from tests.centers import REPO

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = REPO / ".run" / "screenshots"
PASSWORD = "correct horse battery"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs Debian's chromium and chromedriver (apt-get install -y chromium chromium-driver)",
    ),
]


@dataclass
class Site:
    base: str
    controller: Controller


@pytest.fixture
async def site(db_dsn: str, tmp_path: Path) -> AsyncIterator[Site]:
    config = for_demo(load_config(REPO / "dialplans"), tmp_path)
    write_files(render(config), tmp_path / "asterisk")
    start = demo_start(config, now=RealClock().now(), latest=None)
    clock = ScaledClock(10.0, start=start)
    sim = await start_sim(
        tmp_path / "asterisk", tmp_path, clock=clock, seed=11, sounds_dirs=(REPO / "ivr_prompts",)
    )
    links = Links.from_config(
        config, ami_host="127.0.0.1", ami_port=sim.ami_port, agi_bind="127.0.0.1", agi_port=0,
        http_host="127.0.0.1", http_port=0,
    )  # fmt: skip
    ctl = Controller(
        config, dsn=db_dsn, run_dir=tmp_path, clock=clock, links=links, plugins=standard_plugins(),
        counter_refresh=10.0,
    )  # fmt: skip
    conn = await asyncpg.connect(db_dsn)
    try:
        await users.add_user(
            conn, "grace", "supervisor", hash_password(PASSWORD), queues=["sales", "general"], agent_id="9001"
        )
    finally:
        await conn.close()
    stop = asyncio.Event()
    task = asyncio.create_task(ctl.run(stop))
    try:
        await asyncio.wait_for(ctl.ready.wait(), 60)
        await login_all(ctl)
        assert ctl.agi is not None and ctl.http is not None
        sim.start_people(center_scenario("busy-hour", config, 60), agi_port=ctl.agi.port)
        yield Site(f"http://127.0.0.1:{ctl.http.port}", ctl)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await sim.close()


def browser(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # the page's own viewport exactly as the TV's (the window's frame would take some otherwise)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    return driver


def watch_wallboard(base: str, width: int, height: int) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(width, height)
    try:
        driver.get(base + "/wallboard")
        # first paint: the rows come from the page itself, before any event arrives
        first = driver.execute_script(
            "return [document.querySelectorAll('#queue-rows tr').length,"
            " document.querySelector('#t-waiting .value').textContent]"
        )
        seen: dict[str, Any] = {"first_rows": first[0], "first_waiting": first[1]}
        offered = int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-offered") or 0)
        seen["offered_before"] = offered
        WebDriverWait(driver, 120, poll_frequency=0.5).until(
            lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-offered") or 0) > offered
        )
        seen["offered_after"] = int(
            driver.find_element(By.TAG_NAME, "body").get_attribute("data-offered") or 0
        )
        seen["stale_hidden"] = driver.find_element(By.ID, "stale").get_attribute("hidden") is not None
        seen["scroll"] = driver.execute_script(
            "const e = document.documentElement;"
            " return [e.scrollWidth, e.scrollHeight, innerWidth, innerHeight]"
        )
        # nothing spills out of its box: every numeral fits its cell
        seen["clipped"] = driver.execute_script(
            "return [...document.querySelectorAll('td:not(.agents), .kpi .value')]"
            ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)"
        )
        seen["clock"] = driver.find_element(By.ID, "clock").text
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / f"wallboard-{width}x{height}.png"))
        return seen
    finally:
        driver.quit()


async def test_the_wallboard_is_filled_at_once_and_moves_with_the_calls(site: Site) -> None:
    for width, height in ((1920, 1080), (1280, 720)):
        seen = await asyncio.wait_for(asyncio.to_thread(watch_wallboard, site.base, width, height), 240)
        assert seen["first_rows"] == len(site.controller.config.queues)
        assert seen["first_waiting"] != "-"
        assert seen["offered_after"] > seen["offered_before"]
        assert seen["stale_hidden"]
        assert seen["scroll"] == [width, height, width, height]  # no scrolling
        assert seen["clipped"] == []
        assert seen["clock"].count(":") == 2


def supervise(base: str, pin: str) -> dict[str, Any]:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(1920, 1080)
    try:
        wait = WebDriverWait(
            driver, 120, poll_frequency=0.5, ignored_exceptions=[StaleElementReferenceException]
        )
        driver.get(base + "/supervisor")
        wait.until(ec.visibility_of_element_located((By.ID, "signin")))  # not signed in yet
        driver.find_element(By.ID, "signin-link").click()
        wait.until(ec.visibility_of_element_located((By.ID, "name")))
        driver.find_element(By.ID, "name").send_keys("grace")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "submit").click()
        wait.until(ec.url_to_be(base + "/supervisor"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#agents tr")) >= 4)
        seen: dict[str, Any] = {
            "agents": sorted(
                r.get_attribute("data-agent") for r in driver.find_elements(By.CSS_SELECTOR, "#agents tr")
            ),
            "tiles": sorted(
                t.get_attribute("data-queue") for t in driver.find_elements(By.CSS_SELECTOR, ".tile")
            ),
        }
        driver.find_element(By.ID, "pin").send_keys(pin)

        def listen(d: Any) -> bool:
            for button in d.find_elements(By.CSS_SELECTOR, "#agents tr button[data-action=listen]"):
                if button.is_enabled():
                    seen["listened_to"] = button.find_element(By.XPATH, "./ancestor::tr").get_attribute(
                        "data-agent"
                    )
                    button.click()
                    return True
            return False

        wait.until(listen)  # an agent of sales or general is on a call: one click
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sessions .session"))
        seen["session"] = driver.find_element(By.CSS_SELECTOR, "#sessions .session b").text
        seen["notice"] = driver.find_element(By.ID, "notice").text
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#feed li"))
        # pause the campaign of one of its queues: its state comes back through the stream
        pause = "#campaigns [data-campaign=renewals] button"
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, pause), "Pause"))
        driver.find_element(By.CSS_SELECTOR, pause).click()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, pause), "Resume"))
        seen["campaign"] = driver.find_element(By.CSS_SELECTOR, "#campaigns [data-campaign=renewals]").text
        driver.save_screenshot(str(SHOTS / "supervisor-1920x1080.png"))
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": False},
        )
        seen["scroll"] = driver.execute_script(
            "const e = document.documentElement, g = document.querySelector('.scroll');"
            " return [e.scrollWidth, e.scrollHeight, g.scrollWidth <= g.clientWidth]"
        )
        driver.save_screenshot(str(SHOTS / "supervisor-1280x720.png"))
        return seen
    finally:
        driver.quit()


async def test_a_supervisor_watches_the_grid_and_listens_in_with_one_click(site: Site) -> None:
    seen = await asyncio.wait_for(asyncio.to_thread(supervise, site.base, DEMO_PINS["9001"]), 300)
    config = site.controller.config
    mine = {"sales", "general"}
    expected = sorted(a.id for a in config.agents.values() if mine & set(config.queues_of(a)))
    assert seen["agents"] == expected
    assert seen["tiles"] == ["general", "sales"]
    assert seen["listened_to"] in expected
    assert seen["session"].startswith("listen on ")
    assert "Your phone rings" in seen["notice"] or "listen" in seen["notice"]
    assert seen["scroll"] == [1280, 720, True]  # the grid fits its panel too
    # the controller rang the supervisor's own phone to spy on that agent
    conn = await asyncpg.connect(site.controller.dsn)
    try:
        rows = [e for e in await audit.entries(conn) if e["action"] == "monitor.control"]
    finally:
        await conn.close()
    assert [(r["who"], r["status"]) for r in rows] == [("grace", 201)]
    assert "paused" in seen["campaign"]
    conn = await asyncpg.connect(site.controller.dsn)
    try:
        paused = [e for e in await audit.entries(conn) if e["action"] == "campaign.pause"]
    finally:
        await conn.close()
    assert [(r["who"], r["path"], r["status"]) for r in paused] == [
        ("grace", "/api/campaigns/renewals/pause", 200)
    ]


@pytest.fixture
async def board() -> AsyncIterator[tuple[str, feed.Hub]]:
    """The wallboard page and its stream alone, fed by the test through the hub."""
    hub = feed.Hub()
    first = Snapshot(
        at=1_796_300_000.0,
        queues=(QueueView("sales", label="Sales", offered=4, answered=3, answered_in_target=3),),
        agents_by_state={"available": 2, "on_call": 1},
        timezone="America/New_York",
        center="Test center",
    ).to_dict()

    async def page_(req: web.Request) -> web.StreamResponse:
        body = page("wallboard.html").replace(b"{{INITIAL}}", json.dumps(first).encode())
        return web.Response(body=body, content_type="text/html")

    router = Router()
    router.add("GET", "/wallboard", page_)
    register_pages(router)
    FeedStreams(hub, clock=RealClock(), min_interval=0.1).register(router)
    server = HTTPServer(router)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", hub
    finally:
        await server.close()


def watch_stale(base: str, publish: Any) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(1280, 720)
    try:
        wait = WebDriverWait(driver, 30, poll_frequency=0.2)
        driver.get(base + "/wallboard?stale=2")
        seen = {"first": driver.find_element(By.CSS_SELECTOR, "#t-sl .value").text}
        seen["fresh_hidden"] = driver.find_element(By.ID, "stale").get_attribute("hidden") is not None
        wait.until(ec.visibility_of_element_located((By.ID, "stale")))  # no update for 2 s
        seen["stale_text"] = driver.find_element(By.ID, "stale").text
        driver.save_screenshot(str(SHOTS / "wallboard-stale-1280x720.png"))
        publish(waiting=3)  # a call arrives (two more already wait)
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#t-waiting .value"), "3"))
        wait.until(ec.invisibility_of_element_located((By.ID, "stale")))
        seen["row"] = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#queue-rows tr td")]
        return seen
    finally:
        driver.quit()


async def test_the_wallboard_warns_when_updates_stop_and_recovers(board: tuple[str, feed.Hub]) -> None:
    base, hub = board
    loop = asyncio.get_running_loop()

    def publish(waiting: int) -> None:
        view = QueueView("sales", label="Sales", waiting=waiting, longest_wait=42.0, offered=5, answered=3)
        data = Snapshot(at=1_796_300_060.0, queues=(view,), timezone="America/New_York").to_dict()
        change = feed.Change(feed.SNAPSHOT, 1_796_300_060.0, data=data, key="snapshot")
        loop.call_soon_threadsafe(hub.publish, change)

    seen = await asyncio.wait_for(asyncio.to_thread(watch_stale, base, publish), 120)
    assert seen["first"] == "75%" and seen["fresh_hidden"]
    assert seen["stale_text"].startswith("STALE: no update since")
    name, waiting, longest = seen["row"][:3]
    assert (name, waiting) == ("Sales", "3")
    assert longest.startswith("0:4")  # 42 s, ticking on in the browser
