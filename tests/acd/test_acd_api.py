"""``callcenter agent ...`` against the ACD's HTTP routes on a real loopback server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from callcenter.acd import agents as ag
from callcenter.acd.http import register_routes
from callcenter.cli import main
from callcenter.config.model import Config
from callcenter.web.access import Principal
from callcenter.web.http import HTTPServer, Router
from tests.centers import example
from tests.fakes import TokenTable, acd_rig, bearer, http_exchange, http_request, http_split


@pytest.fixture(scope="module")
def config() -> Config:
    return example()


async def test_agent_commands_drive_the_running_acd(config: Config, tmp_path: Path) -> None:
    async with acd_rig(config, tmp_path) as rig:
        router = Router()
        register_routes(router, rig.acd)
        tokens = TokenTable(
            {
                "t-admin": Principal("root", "admin"),
                "t-1001": Principal("alice", "agent", agent_id="1001"),
            }
        )
        server = HTTPServer(router, host="127.0.0.1", port=0, authenticator=tokens)
        await server.start()
        api = ["agent", "--api", f"http://127.0.0.1:{server.port}", "--timeout", "5", "--token", "t-admin"]

        out: list[str] = []
        err: list[str] = []

        async def cli(*args: str) -> int:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "callcenter",
                *api,
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            o, e = await asyncio.wait_for(proc.communicate(), 30)
            out.append(o.decode())
            err.append(e.decode())
            assert proc.returncode is not None
            return proc.returncode

        try:
            assert await cli("login", "1001", "--paused", "training") == 0
            assert "agent 1001: paused (training)" in out[-1]
            assert rig.acd.agent_state("1001").status is ag.Status.PAUSED
            assert await cli("resume", "1001") == 0
            assert await cli("pause", "1001", "lunch") == 0
            assert rig.acd.agent_state("1001").reason == "lunch"
            assert await cli("pause", "1001", "nap") == 1
            assert "unknown pause reason" in err[-1]
            assert await cli("login", "1001") == 1  # already logged in: a stable code, exit 1
            assert await cli("status", "--format", "json") == 0
            snap = json.loads(out[-1])
            assert snap["agents"]["1001"]["status"] == "paused"
            assert await cli("status") == 0
            assert "1001" in out[-1]
            assert await cli("logout", "1001") == 0
            assert rig.acd.agent_state("1001").status is ag.Status.LOGGED_OUT
            # An agent's token works for its own agent only, and not for every agent's state.
            api[-1] = "t-1001"
            assert await cli("login", "1001") == 0
            assert await cli("login", "1002") == 1
            assert "may not agent.state" in err[-1]
            assert await cli("status") == 1
            api[-2:] = []
            assert await cli("logout", "1001") == 1
            assert "Bearer" in err[-1]
            assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
        finally:
            await server.close()


def test_agent_command_without_a_controller_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 on loopback: nothing listens there in the test environment.
    assert main(["agent", "--api", "http://127.0.0.1:9", "--timeout", "2", "resume", "1001"]) == 1
    assert "cannot reach the controller" in capsys.readouterr().err


async def test_an_agent_reads_the_pause_reasons_with_their_names(config: Config, tmp_path: Path) -> None:
    async with acd_rig(config, tmp_path) as rig:
        router = Router()
        register_routes(router, rig.acd)
        tokens = TokenTable({"t-1001": Principal("alice", "agent", agent_id="1001")})
        server = HTTPServer(router, host="127.0.0.1", port=0, authenticator=tokens)
        await server.start()
        try:
            raw = await http_exchange(
                server.port, http_request("/api/pause_reasons", headers=bearer("t-1001"))
            )
        finally:
            await server.close()
    status, body = http_split(raw)
    assert status == 200
    reasons = {r["code"]: r for r in json.loads(body)}
    assert reasons["break"] == {"code": "break", "name": "Short break", "digits": "1", "max_minutes": 15}
    assert reasons["training"]["name"] == "Training" and reasons["training"]["max_minutes"] is None
