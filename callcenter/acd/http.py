"""Shell: the ACD's HTTP routes (agents' states, PCI pause, recording on demand, transfers)."""

from __future__ import annotations

from typing import Any

from callcenter.acd import agents as ag
from callcenter.acd.service import ACD
from callcenter.web.http import json_response


def register_routes(router: Any, acd: ACD) -> None:
    """Mount the agent API on a ``callcenter.web.http.Router``::

    POST /api/agents/{agent_id}/login   {"paused_reason": "...", "pin": "..."}  (both optional)
    POST /api/agents/{agent_id}/logout
    POST /api/agents/{agent_id}/pause   {"reason": "lunch"}
    POST /api/agents/{agent_id}/resume
    GET  /api/agents                    every agent's state
    POST /api/calls/{call_id}/pci_pause | pci_resume | record
    POST /api/calls/{call_id}/transfer  {"queue": "billing"} or {"number": "..."} [+ "attended": true]
    """

    def state_json(s: ag.AgentState) -> dict[str, Any]:
        return {
            "agent_id": s.agent_id,
            "status": s.status.value,
            "reason": s.reason,
            "since": s.since,
            "call_id": s.call_id,
        }

    async def login(req: Any) -> Any:
        body = req.json()
        s = await acd.login(
            req.params["agent_id"], paused_reason=body.get("paused_reason"), pin=body.get("pin")
        )
        return json_response(state_json(s))

    async def logout(req: Any) -> Any:
        return json_response(state_json(await acd.logout(req.params["agent_id"])))

    async def pause(req: Any) -> Any:
        reason = str(req.json().get("reason") or "")
        return json_response(state_json(await acd.pause(req.params["agent_id"], reason)))

    async def resume(req: Any) -> Any:
        return json_response(state_json(await acd.resume(req.params["agent_id"])))

    async def list_agents(req: Any) -> Any:
        return json_response(acd.snapshot())

    async def pci_pause(req: Any) -> Any:
        return json_response({"paused": await acd.pci_pause(req.params["call_id"], by="api")})

    async def pci_resume(req: Any) -> Any:
        return json_response({"resumed": await acd.pci_resume(req.params["call_id"], by="api")})

    async def record(req: Any) -> Any:
        return json_response({"recording": await acd.record(req.params["call_id"])})

    async def transfer(req: Any) -> Any:
        body = req.json()
        call_id = req.params["call_id"]
        if body.get("queue"):
            await acd.transfer_to_queue(call_id, str(body["queue"]))
        elif body.get("attended"):
            await acd.attended_transfer(call_id, str(body.get("number") or ""))
        else:
            await acd.transfer_to_number(call_id, str(body.get("number") or ""))
        return json_response({"ok": True})

    router.add("POST", "/api/agents/{agent_id}/login", login)
    router.add("POST", "/api/agents/{agent_id}/logout", logout)
    router.add("POST", "/api/agents/{agent_id}/pause", pause)
    router.add("POST", "/api/agents/{agent_id}/resume", resume)
    router.add("GET", "/api/agents", list_agents)
    router.add("POST", "/api/calls/{call_id}/pci_pause", pci_pause)
    router.add("POST", "/api/calls/{call_id}/pci_resume", pci_resume)
    router.add("POST", "/api/calls/{call_id}/record", record)
    router.add("POST", "/api/calls/{call_id}/transfer", transfer)
