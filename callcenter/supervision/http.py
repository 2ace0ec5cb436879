"""Shell: the monitor's HTTP routes (start, switch mode, stop a listen-in)."""

from __future__ import annotations

from aiohttp import web

from callcenter.supervision.service import MonitorService
from callcenter.web.http import Router, body, json_response
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
    """Mount the monitoring API::

    GET  /api/monitor/sessions                          the sessions in progress
    POST /api/monitor/sessions    {"supervisor_id", "agent_id", "mode", "pin"}   ring and spy
    POST /api/monitor/sessions/{session_id}/mode   {"mode": "whisper"}
    POST /api/monitor/sessions/{session_id}/stop

    Refusals are ``DomainError`` codes: unauthorised, locked_out, bad_pin, unknown_agent,
    bad_mode, out_of_scope, unknown_session, no_ami."""

    async def sessions(req: web.Request) -> web.StreamResponse:
        return json_response({"sessions": monitor.snapshot()})

    async def start(req: web.Request) -> web.StreamResponse:
        b = body(req)
        s = await monitor.start(b["supervisor_id"], b["agent_id"], b["mode"], pin=b.get("pin", ""))
        return json_response(s.view(), status=201)

    async def mode(req: web.Request) -> web.StreamResponse:
        s = await monitor.set_mode(req.match_info["session_id"], body(req)["mode"])
        return json_response(s.view())

    async def stop(req: web.Request) -> web.StreamResponse:
        await monitor.stop(req.match_info["session_id"])
        return json_response({"stopped": req.match_info["session_id"]})

    router.add("GET", "/api/monitor/sessions", sessions)
    router.add("POST", "/api/monitor/sessions", start, schema=START)
    router.add("POST", "/api/monitor/sessions/{session_id}/mode", mode, schema=MODE)
    router.add("POST", "/api/monitor/sessions/{session_id}/stop", stop)
