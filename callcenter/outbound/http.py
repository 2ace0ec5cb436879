"""Shell: the dialer's HTTP routes (campaign status, pause, resume, stop, contact import)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from callcenter.outbound.service import DialerService
from callcenter.web.http import HTTPError, json_response

log = logging.getLogger(__name__)


def register_routes(router: Any, service: DialerService) -> None:
    """Mount the campaign API on a ``callcenter.web.http.Router``::

    GET  /api/campaigns                          every campaign's status (pacing explained)
    GET  /api/campaigns/{campaign}               one campaign's status
    POST /api/campaigns/{campaign}/pause | resume | stop
    POST /api/campaigns/{campaign}/preview/next  {"agent_id": "1001"}  -> the contact held
    POST /api/campaigns/{campaign}/preview/dial  {"agent_id": "1001", "contact": "<key>"}
    POST /api/campaigns/{campaign}/preview/skip  {"agent_id": "1001", "contact": "<key>", "delay": 600}

    A refused request (unknown campaign, stopped campaign, contact not held) answers 409 with the
    ``CampaignError`` code."""

    def text(body: Mapping[str, Any], key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise HTTPError(400, "bad_request", f"{key!r} (a string) is required")
        return value

    async def list_all(req: Any) -> Any:
        return json_response({cid: service.status(cid) for cid in sorted(service.campaign_ids())})

    async def one(req: Any) -> Any:
        return json_response(service.status(req.params["campaign"]))

    async def pause(req: Any) -> Any:
        await service.pause(req.params["campaign"])
        return json_response(service.status(req.params["campaign"]))

    async def resume(req: Any) -> Any:
        await service.resume(req.params["campaign"])
        return json_response(service.status(req.params["campaign"]))

    async def stop(req: Any) -> Any:
        await service.stop(req.params["campaign"])
        return json_response(service.status(req.params["campaign"]))

    async def preview_next(req: Any) -> Any:
        held = service.preview_next(req.params["campaign"], text(req.json(), "agent_id"))
        if held is None:
            return json_response({"contact": None})
        c = held.contact
        return json_response(
            {
                "contact": c.key,
                "phone": c.phone,
                "name": c.name,
                "data": dict(c.data),
                "attempts": held.attempts,
                "last_outcome": held.last_outcome.value if held.last_outcome else None,
            }
        )

    async def preview_dial(req: Any) -> Any:
        body = req.json()
        attempt = await service.preview_dial(
            req.params["campaign"], text(body, "contact"), text(body, "agent_id")
        )
        return json_response({"attempt": attempt.attempt_id, "number": attempt.number})

    async def preview_skip(req: Any) -> Any:
        body = req.json()
        delay = body.get("delay", 0)
        if not isinstance(delay, int | float) or delay < 0:
            raise HTTPError(400, "bad_request", "'delay' must be a number of seconds >= 0")
        service.preview_skip(
            req.params["campaign"], text(body, "contact"), text(body, "agent_id"), delay=float(delay)
        )
        return json_response({"ok": True})

    router.add("GET", "/api/campaigns", list_all)
    router.add("GET", "/api/campaigns/{campaign}", one)
    router.add("POST", "/api/campaigns/{campaign}/pause", pause)
    router.add("POST", "/api/campaigns/{campaign}/resume", resume)
    router.add("POST", "/api/campaigns/{campaign}/stop", stop)
    router.add("POST", "/api/campaigns/{campaign}/preview/next", preview_next)
    router.add("POST", "/api/campaigns/{campaign}/preview/dial", preview_dial)
    router.add("POST", "/api/campaigns/{campaign}/preview/skip", preview_skip)
