"""Shell: the ACD's HTTP routes (agents' states, PCI pause, recording on demand, hold, transfers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcenter.acd import agents as ag
from callcenter.acd.pin import api_source
from callcenter.acd.service import ACD
from callcenter.web.access import Target
from callcenter.web.http import Router, body, json_response, principal
from callcenter.web.schema import Field, Schema

LOGIN = Schema((Field("paused_reason", max_length=40), Field("pin", max_length=20)))
PAUSE = Schema((Field("reason", max_length=40),))
TRANSFER = Schema(
    (Field("queue", max_length=40), Field("number", max_length=32), Field("attended", "boolean"))
)


def register_routes(router: Router, acd: ACD) -> None:
    """Mount the agent API (an agent acts on itself and its own calls, a supervisor on its
    queues' agents and calls, an admin on any)::

    POST /api/agents/{agent_id}/login   {"paused_reason": "...", "pin": "..."}  (both optional)
    POST /api/agents/{agent_id}/logout
    POST /api/agents/{agent_id}/pause   {"reason": "lunch"}
    POST /api/agents/{agent_id}/resume
    GET  /api/agents                    every agent's state
    GET  /api/pause_reasons             the pause reasons an agent may choose (code, name, digits)
    POST /api/calls/{call_id}/pci_pause | pci_resume | record
    POST /api/calls/{call_id}/hold | unhold   (409 already_held / not_held / on_hold ...)
    POST /api/calls/{call_id}/transfer  {"queue": "billing"} or {"number": "..."} [+ "attended": true]
    """

    def agent_target(agent_id: str) -> Target:
        agent = acd.config.agents.get(agent_id)
        queues = frozenset(acd.config.queues_of(agent)) if agent is not None else frozenset()
        return Target(agent_id=agent_id, queues=queues, label=f"agent {agent_id}")

    def of_agent(req: web.Request, checked: dict[str, Any]) -> Target:
        return agent_target(req.match_info["agent_id"])

    def of_call(req: web.Request, checked: dict[str, Any]) -> Target:
        call_id = req.match_info["call_id"]
        call = acd.snapshot()["calls"].get(call_id) or {}
        queue = call.get("queue")
        return Target(
            agent_id=call.get("agent_id"),
            queues=frozenset({queue}) if queue else frozenset(),
            label=f"call {call_id}",
        )

    def by(req: web.Request) -> str:
        who = principal(req)
        return who.name if who is not None else "api"

    def state_json(s: ag.AgentState) -> dict[str, Any]:
        return {
            "agent_id": s.agent_id,
            "status": s.status.value,
            "reason": s.reason,
            "since": s.since,
            "call_id": s.call_id,
        }

    async def login(req: web.Request) -> web.StreamResponse:
        b = body(req)
        who = principal(req)
        s = await acd.login(
            req.match_info["agent_id"],
            paused_reason=b.get("paused_reason"),
            pin=b.get("pin"),
            sources=(api_source(who.name if who is not None else None, req.remote),),
        )
        return json_response(state_json(s))

    async def logout(req: web.Request) -> web.StreamResponse:
        return json_response(state_json(await acd.logout(req.match_info["agent_id"])))

    async def pause(req: web.Request) -> web.StreamResponse:
        reason = str(body(req).get("reason") or "")
        return json_response(state_json(await acd.pause(req.match_info["agent_id"], reason)))

    async def resume(req: web.Request) -> web.StreamResponse:
        return json_response(state_json(await acd.resume(req.match_info["agent_id"])))

    async def list_agents(req: web.Request) -> web.StreamResponse:
        return json_response(acd.snapshot())

    async def pause_reasons(req: web.Request) -> web.StreamResponse:
        return json_response(
            [
                {"code": r.code, "name": r.name, "digits": r.digits, "max_minutes": r.max_minutes}
                for r in acd.config.pause_reasons.values()
            ]
        )

    async def pci_pause(req: web.Request) -> web.StreamResponse:
        return json_response({"paused": await acd.pci_pause(req.match_info["call_id"], by=by(req))})

    async def pci_resume(req: web.Request) -> web.StreamResponse:
        return json_response({"resumed": await acd.pci_resume(req.match_info["call_id"], by=by(req))})

    async def record(req: web.Request) -> web.StreamResponse:
        return json_response({"recording": await acd.record(req.match_info["call_id"])})

    async def hold(req: web.Request) -> web.StreamResponse:
        call_id = req.match_info["call_id"]
        await acd.hold(call_id, by=by(req))
        return json_response({"call_id": call_id, "held": True})

    async def unhold(req: web.Request) -> web.StreamResponse:
        call_id = req.match_info["call_id"]
        await acd.unhold(call_id, by=by(req))
        return json_response({"call_id": call_id, "held": False})

    async def transfer(req: web.Request) -> web.StreamResponse:
        b = body(req)
        call_id = req.match_info["call_id"]
        if b.get("queue"):
            await acd.transfer_to_queue(call_id, str(b["queue"]))
        elif b.get("attended"):
            await acd.attended_transfer(call_id, str(b.get("number") or ""))
        else:
            await acd.transfer_to_number(call_id, str(b.get("number") or ""))
        return json_response({"ok": True})

    state, call = "agent.state", "call.control"
    router.add("POST", "/api/agents/{agent_id}/login", login, schema=LOGIN, action=state, target=of_agent)
    router.add("POST", "/api/agents/{agent_id}/logout", logout, action=state, target=of_agent)
    router.add("POST", "/api/agents/{agent_id}/pause", pause, schema=PAUSE, action=state, target=of_agent)
    router.add("POST", "/api/agents/{agent_id}/resume", resume, action=state, target=of_agent)
    router.add("GET", "/api/agents", list_agents, action="agents.view")
    router.add("GET", "/api/pause_reasons", pause_reasons, action="status.view")
    router.add("POST", "/api/calls/{call_id}/pci_pause", pci_pause, action=call, target=of_call)
    router.add("POST", "/api/calls/{call_id}/pci_resume", pci_resume, action=call, target=of_call)
    router.add("POST", "/api/calls/{call_id}/record", record, action=call, target=of_call)
    router.add("POST", "/api/calls/{call_id}/hold", hold, action=call, target=of_call)
    router.add("POST", "/api/calls/{call_id}/unhold", unhold, action=call, target=of_call)
    router.add(
        "POST", "/api/calls/{call_id}/transfer", transfer, schema=TRANSFER, action=call, target=of_call
    )
