"""Shell: the dialer's HTTP routes (campaign status, pause, resume, stop, contact import)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from callcenter.outbound.service import DialerService
from callcenter.web.access import Target
from callcenter.web.http import Router, body, json_response
from callcenter.web.schema import Field, Schema

log = logging.getLogger(__name__)

NEXT = Schema((Field("agent_id", required=True, max_length=40),))
DIAL = Schema(
    (Field("agent_id", required=True, max_length=40), Field("contact", required=True, max_length=200))
)
SKIP = Schema((*DIAL.fields, Field("delay", "number", minimum=0, maximum=366 * 86400)))


def register_routes(router: Router, service: DialerService) -> None:
    """Mount the campaign API (supervisors and admins see campaigns; admins control them, a
    supervisor pauses and resumes those whose queue is its own; an agent previews as itself)::

    GET  /api/campaigns                          every campaign's status (pacing explained)
    GET  /api/campaigns/{campaign}               one campaign's status
    POST /api/campaigns/{campaign}/pause | resume | stop
    POST /api/campaigns/{campaign}/preview/next  {"agent_id": "1001"}  -> the contact held
    POST /api/campaigns/{campaign}/preview/dial  {"agent_id": "1001", "contact": "<key>"}
    POST /api/campaigns/{campaign}/preview/skip  {"agent_id": "1001", "contact": "<key>", "delay": 600}

    A refused request (unknown campaign, stopped campaign, contact not held) answers 409 with the
    ``CampaignError`` code."""

    def of_campaign(req: web.Request, checked: dict[str, Any]) -> Target:
        cid = req.match_info["campaign"]
        campaign = service.config.campaigns.get(cid) if service.config is not None else None
        queues = frozenset({campaign.queue}) if campaign is not None else frozenset()
        return Target(queues=queues, label=f"campaign {cid}")

    def of_previewer(req: web.Request, checked: dict[str, Any]) -> Target:
        agent_id = str(checked.get("agent_id", ""))
        return Target(agent_id=agent_id, label=f"campaign {req.match_info['campaign']} agent {agent_id}")

    async def list_all(req: web.Request) -> web.StreamResponse:
        return json_response({cid: service.status(cid) for cid in sorted(service.campaign_ids())})

    async def one(req: web.Request) -> web.StreamResponse:
        return json_response(service.status(req.match_info["campaign"]))

    async def pause(req: web.Request) -> web.StreamResponse:
        await service.pause(req.match_info["campaign"])
        return json_response(service.status(req.match_info["campaign"]))

    async def resume(req: web.Request) -> web.StreamResponse:
        await service.resume(req.match_info["campaign"])
        return json_response(service.status(req.match_info["campaign"]))

    async def stop(req: web.Request) -> web.StreamResponse:
        await service.stop(req.match_info["campaign"])
        return json_response(service.status(req.match_info["campaign"]))

    async def preview_next(req: web.Request) -> web.StreamResponse:
        held = service.preview_next(req.match_info["campaign"], body(req)["agent_id"])
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

    async def preview_dial(req: web.Request) -> web.StreamResponse:
        b = body(req)
        attempt = await service.preview_dial(req.match_info["campaign"], b["contact"], b["agent_id"])
        return json_response({"attempt": attempt.attempt_id, "number": attempt.number})

    async def preview_skip(req: web.Request) -> web.StreamResponse:
        b = body(req)
        service.preview_skip(
            req.match_info["campaign"], b["contact"], b["agent_id"], delay=float(b.get("delay", 0))
        )
        return json_response({"ok": True})

    view, control, preview = "campaign.view", "campaign.control", "campaign.preview"
    base = "/api/campaigns/{campaign}"
    router.add("GET", "/api/campaigns", list_all, action=view)
    router.add("GET", base, one, action=view, target=of_campaign)
    router.add("POST", base + "/pause", pause, action="campaign.pause", target=of_campaign)
    router.add("POST", base + "/resume", resume, action="campaign.pause", target=of_campaign)
    router.add("POST", base + "/stop", stop, action=control, target=of_campaign)
    router.add("POST", base + "/preview/next", preview_next, schema=NEXT, action=preview, target=of_previewer)
    router.add("POST", base + "/preview/dial", preview_dial, schema=DIAL, action=preview, target=of_previewer)
    router.add("POST", base + "/preview/skip", preview_skip, schema=SKIP, action=preview, target=of_previewer)
