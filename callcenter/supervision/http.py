"""Shell: the monitor's HTTP routes (start, switch mode, stop a listen-in)."""

from __future__ import annotations

import logging
from typing import Any

from callcenter.supervision.service import MonitorService
from callcenter.web.http import json_response

log = logging.getLogger(__name__)


def register_routes(router: Any, monitor: MonitorService) -> None:
    """Mount the monitoring API on a ``callcenter.web.http.Router``::

    GET  /api/monitor/sessions                          the sessions in progress
    POST /api/monitor/sessions    {"supervisor_id", "agent_id", "mode", "pin"}   ring and spy
    POST /api/monitor/sessions/{session_id}/mode   {"mode": "whisper"}
    POST /api/monitor/sessions/{session_id}/stop

    Refusals are ``DomainError`` codes: unauthorised, locked_out, bad_pin, unknown_agent,
    bad_mode, out_of_scope, unknown_session, no_ami."""

    async def sessions(req: Any) -> Any:
        return json_response({"sessions": monitor.snapshot()})

    async def start(req: Any) -> Any:
        body = req.json()
        s = await monitor.start(
            str(body.get("supervisor_id", "")),
            str(body.get("agent_id", "")),
            str(body.get("mode", "")),
            pin=str(body.get("pin", "")),
        )
        return json_response(s.view(), status=201)

    async def mode(req: Any) -> Any:
        s = await monitor.set_mode(req.params["session_id"], str(req.json().get("mode", "")))
        return json_response(s.view())

    async def stop(req: Any) -> Any:
        await monitor.stop(req.params["session_id"])
        return json_response({"stopped": req.params["session_id"]})

    router.add("GET", "/api/monitor/sessions", sessions)
    router.add("POST", "/api/monitor/sessions", start)
    router.add("POST", "/api/monitor/sessions/{session_id}/mode", mode)
    router.add("POST", "/api/monitor/sessions/{session_id}/stop", stop)
