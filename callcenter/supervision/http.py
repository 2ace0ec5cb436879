"""Shell: the monitor's HTTP routes (start, switch mode, stop a listen-in)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcenter.acd.pin import api_source
from callcenter.supervision.service import MonitorService
from callcenter.web.access import Target
from callcenter.web.http import Router, body, json_response, principal
from callcenter.web.schema import Field, Schema

START = Schema(
    (
        Field("supervisor_id", required=True, max_length=40),
        Field("agent_id", required=True, max_length=40),
        Field("mode", required=True, max_length=20),
        Field("pin", max_length=20),
    )
)
MODE = Schema((Field("mode", required=True, max_length=20),))


def register_routes(router: Router, monitor: MonitorService) -> None:
    """Mount the monitoring API (a supervisor acts as itself, on its queues' agents; an admin on
    any)::

    GET  /api/monitor/sessions                          the sessions in progress
    POST /api/monitor/sessions    {"supervisor_id", "agent_id", "mode", "pin"}   ring and spy
    POST /api/monitor/sessions/{session_id}/mode   {"mode": "whisper"}
    POST /api/monitor/sessions/{session_id}/stop

    Refusals are ``DomainError`` codes: unauthorised, locked_out, bad_pin, unknown_agent,
    bad_mode, out_of_scope, unknown_session, no_ami."""

    def agent_target(agent_id: str, acting_as: str | None, label: str) -> Target:
        agent = monitor.config.agents.get(agent_id)
        queues = frozenset(monitor.config.queues_of(agent)) if agent is not None else frozenset()
        return Target(agent_id=agent_id, queues=queues, acting_as=acting_as, label=label)

    def of_start(req: web.Request, checked: dict[str, Any]) -> Target:
        agent_id = str(checked.get("agent_id", ""))
        return agent_target(agent_id, str(checked.get("supervisor_id", "")), f"agent {agent_id}")

    def of_session(req: web.Request, checked: dict[str, Any]) -> Target:
        sid = req.match_info["session_id"]
        session = next((x for x in monitor.sessions.values() if x.session_id == sid), None)
        if session is None:
            return Target(label=f"session {sid}")
        return agent_target(session.agent_id, session.supervisor_id, f"session {sid}")

    async def sessions(req: web.Request) -> web.StreamResponse:
        return json_response({"sessions": monitor.snapshot()})

    async def start(req: web.Request) -> web.StreamResponse:
        b = body(req)
        # Wrong PINs lock out their source: the signed-in user (and the address it came from).
        who = principal(req)
        source = api_source(who.name if who is not None else None, req.remote)
        s = await monitor.start(
            b["supervisor_id"], b["agent_id"], b["mode"], pin=b.get("pin", ""), source=source
        )
        return json_response(s.view(), status=201)

    async def mode(req: web.Request) -> web.StreamResponse:
        s = await monitor.set_mode(req.match_info["session_id"], body(req)["mode"])
        return json_response(s.view())

    async def stop(req: web.Request) -> web.StreamResponse:
        await monitor.stop(req.match_info["session_id"])
        return json_response({"stopped": req.match_info["session_id"]})

    control = "monitor.control"
    router.add("GET", "/api/monitor/sessions", sessions, action="monitor.view")
    router.add("POST", "/api/monitor/sessions", start, schema=START, action=control, target=of_start)
    router.add(
        "POST",
        "/api/monitor/sessions/{session_id}/mode",
        mode,
        schema=MODE,
        action=control,
        target=of_session,
    )
    router.add("POST", "/api/monitor/sessions/{session_id}/stop", stop, action=control, target=of_session)
