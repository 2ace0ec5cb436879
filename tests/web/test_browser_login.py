"""A real browser (Debian's chromium through chromedriver, headless) signs in with a password on
the login page, gets the session cookie with its flags, and signs out."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.clock import RealClock
from callcenter.store import users
from callcenter.store.audit import PgAudit
from callcenter.store.users import PgUsers
from callcenter.web.auth import hash_password
from callcenter.web.http import HTTPServer, Router
from callcenter.web.session import BrowserSessions

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs Debian's chromium and chromedriver (apt-get install -y chromium chromium-driver)",
    ),
]

PASSWORD = "correct horse battery"


@pytest.fixture
async def site(db_dsn: str) -> AsyncIterator[str]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await users.add_user(conn, "lee", "supervisor", hash_password(PASSWORD), queues=["billing"])
    sessions = BrowserSessions(PgUsers(pool), RealClock())
    router = Router()
    sessions.register(router)
    server = HTTPServer(router, authenticator=PgUsers(pool), audit=PgAudit(pool), sessions=sessions)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
        await pool.close()


def drive(base: str, shots: Path) -> dict[str, Any]:
    """Sign in as a person would; what the browser showed and kept (runs in a thread)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,720"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(base + "/login")
        wait.until(ec.visibility_of_element_located((By.ID, "name")))
        driver.find_element(By.ID, "name").send_keys("lee")
        driver.find_element(By.ID, "password").send_keys("wrong password")
        driver.find_element(By.ID, "submit").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "error"), "wrong name or password"))
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "submit").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "who"), "Signed in as lee"))
        shots.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shots / "login-signed-in.png"))
        result: dict[str, Any] = {"who": driver.find_element(By.ID, "who").text}
        result["cookie"] = driver.get_cookie("cc_session")
        result["script_sees_cookie"] = driver.execute_script("return document.cookie.includes('cc_session')")
        driver.refresh()  # the session survives a reload
        wait.until(ec.text_to_be_present_in_element((By.ID, "who"), "Signed in as lee"))
        driver.find_element(By.ID, "logout").click()
        wait.until(ec.visibility_of_element_located((By.ID, "name")))
        result["after_logout"] = driver.get_cookie("cc_session")
        return result
    finally:
        driver.quit()


async def test_a_browser_signs_in_with_a_password(site: str, tmp_path: Path) -> None:
    seen = await asyncio.wait_for(asyncio.to_thread(drive, site, tmp_path / "screenshots"), 120)
    assert seen["who"] == "Signed in as lee (supervisor)"
    cookie = seen["cookie"]
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert seen["script_sees_cookie"] is False
    assert seen["after_logout"] is None
