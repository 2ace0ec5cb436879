"""Shell: the agent desktop's HTTP side: the page, the agent's desk, the screen pop, dispositions
and the disposition report.

Routes (an agent sees and acts on itself only, a supervisor on its queues' agents, an admin on any;
``callcenter.web.access``)::

    GET  /agent                              the agent desktop (its script and style sheet are
                                             ``/static/agent.js`` and ``agent.css``: web.pages)
    GET  /api/agents/{agent_id}/desk         state, choices (pause reasons, transfer targets) + call
    GET  /api/agents/{agent_id}/call         the screen pop of the offered / current / last call
    POST /api/agents/{agent_id}/disposition  {"code", "notes", "call_id"}: its current or last call
    POST /api/calls/{call_id}/disposition    {"code", "notes"}: by the agent who has or had it
    POST /api/calls/{call_id}/callback       {"minutes", "number"}: call the customer back then
    GET  /api/reports/dispositions?from=&to=&queue=&agent=   calls per code (UNIX seconds)

The screen pop joins what the ACD holds of the call (caller, queue, wait, the data the IVR
collected, already masked where the IVR saw card digits) with the call log (the number dialled,
the IVR path, the caller's last calls: first-contact context) and the customer directory (the
record the IVR's lookup found). Card-like digit runs are masked in every value shown. The call log
or directory being away leaves those parts empty (``history: "unavailable"``), never the pop.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from callcenter.acd import agents as ag
from callcenter.acd import wrapup
from callcenter.acd.service import ACD, AgentCall
from callcenter.clock import Clock
from callcenter.errors import CallcenterError, StoreError
from callcenter.ports import CallHistory, CustomerDirectory
from callcenter.reporting.dispositions import shares
from callcenter.web.access import Target
from callcenter.web.http import HTTPError, Router, body, json_response, principal
from callcenter.web.pages import page_response
from callcenter.web.schema import Field, Schema

log = logging.getLogger(__name__)

DISPOSITION = Schema(
    (
        Field("code", max_length=40),
        Field("notes", max_length=wrapup.NOTES_MAX * 2),
        Field("call_id", max_length=96),
    )
)
CALL_DISPOSITION = Schema(DISPOSITION.fields[:2])
CALLBACK = Schema(
    (
        Field("minutes", "number", required=True, minimum=1, maximum=30 * 24 * 60),
        Field("number", max_length=32),
    )
)
LOOKUP_TIMEOUT = 2.0
RECENT_CALLS = 5


def state_json(s: ag.AgentState) -> dict[str, Any]:
    return {
        "agent_id": s.agent_id,
        "status": s.status.value,
        "reason": s.reason,
        "since": s.since,
        "call_id": s.call_id,
        "pending": s.pending,
        "pending_reason": s.pending_reason or None,
        "wrap_up_until": s.wrap_up_until,
        "wrap_call_id": s.wrap_call_id,
        "disposition_due": s.disposition_due,
        "calls_handled": s.calls_handled,
    }


class Desktop:
    """The desk's data: built from the ACD, the call log and the customer directory."""

    def __init__(
        self,
        acd: ACD,
        clock: Clock,
        *,
        history: CallHistory | None = None,
        customers: CustomerDirectory | None = None,
    ) -> None:
        self.acd = acd
        self.clock = clock
        self.history = history
        self.customers = customers

    def desk(self, agent_id: str) -> dict[str, Any]:
        """The agent, its state and the choices its page offers (no call: see ``screen_pop``)."""
        config = self.acd.config
        agent = config.agents.get(agent_id)
        if agent is None:
            raise HTTPError(404, "unknown_agent", f"no agent {agent_id!r}")
        state = self.acd.agent_state(agent_id)
        queues = config.queues_of(agent)
        previews = [
            {"id": c.id, "name": c.name}
            for c in config.campaigns.values()
            if c.mode.value == "preview" and c.enabled and c.queue in queues
        ]
        others = [
            {
                "id": a.id,
                "name": a.name,
                "extension": a.extension,
                "status": self.acd.agents[a.id].status.value if a.id in self.acd.agents else "logged_out",
            }
            for a in config.agents.values()
            if a.id != agent_id
        ]
        return {
            "agent": {
                "id": agent.id,
                "name": agent.name,
                "extension": agent.extension,
                "queues": list(queues),
            },
            "state": state_json(state),
            "pause_reasons": [
                {"code": r.code, "name": r.name}
                for r in config.pause_reasons.values()
                if r.code not in _rona(config)
            ],
            "transfer": {
                "queues": [{"id": q.id, "name": q.name} for q in config.queues.values()],
                "agents": others,
            },
            "pci": config.recording.pci.enabled,
            "previews": previews,
            "now": self.clock.now(),
        }

    async def screen_pop(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's offered, current or last call as its screen shows it."""
        call = self.acd.agent_call(agent_id)
        if call is None:
            return None
        return await self._pop(call)

    async def _pop(self, call: AgentCall) -> dict[str, Any]:
        config = self.acd.config
        info = call.info
        now = self.clock.now()
        q = config.queues.get(call.queue)
        camp = config.campaigns.get(info.campaign_id or "")
        codes = config.disposition_codes(call.queue, info.campaign_id)
        history_ok = True
        context: Mapping[str, Any] = {}
        if self.history is not None:
            try:
                context = await self.history.call_context(info.call_id, timeout=LOOKUP_TIMEOUT)
            except (StoreError, TimeoutError):
                history_ok = False
        number = info.caller_number or context.get("caller_number")
        customer, shown_keys = await self._customer(info.direction, number, info.data)
        recent: list[Mapping[str, Any]] = []
        if self.history is not None and number and history_ok:
            try:
                recent = await self.history.recent_calls(
                    number, exclude=info.call_id, limit=RECENT_CALLS, timeout=LOOKUP_TIMEOUT
                )
            except (StoreError, TimeoutError):
                history_ok = False
        did = info.did or context.get("did")
        line = config.number(did) if did else None
        if customer is not None and customer.get("source") == "directory":
            shown_keys |= {k for k in info.data if k.startswith("customer_")}  # the lookup's own copy
        waited_until = call.answered_at if call.answered_at is not None else (call.ended_at or now)
        return {
            "call_id": info.call_id,
            "stage": call.stage,
            "direction": info.direction,
            "queue": {"id": call.queue, "name": q.name if q else call.queue},
            "campaign": {"id": camp.id, "name": camp.name} if camp else None,
            "caller": {"number": _masked(number), "name": _masked(info.caller_name)},
            "did": _masked(line.number if line else did),
            "line": line.label or None if line else None,
            "queued_at": call.queued_at,
            "answered_at": call.answered_at,
            "ended_at": call.ended_at,
            "held": call.held,
            "waited_seconds": max(0, round(waited_until - call.queued_at)),
            "ivr_path": [
                {k: _masked(v) if isinstance(v, str) else v for k, v in step.items()}
                for step in context.get("ivr_path", [])
            ],
            "collected": {k: _masked(v) for k, v in info.data.items() if k not in shown_keys},
            "customer": customer,
            "recent_calls": [
                {k: _masked(v) if isinstance(v, str) else v for k, v in r.items()} for r in recent
            ],
            "history": "ok" if history_ok else "unavailable",
            "dispositions": [{"code": c.code, "label": c.label} for c in codes],
            "disposition_required": bool(codes),
            "now": now,
        }

    async def _customer(
        self, direction: str, number: str | None, data: Mapping[str, str]
    ) -> tuple[dict[str, Any] | None, set[str]]:
        """The customer record (inbound: the directory's, as the IVR's lookup found it; outbound:
        the campaign contact's data) and the data keys it shows."""
        if direction == "outbound":
            name = data.get("name")
            rest = {k: _masked(v) for k, v in data.items() if k != "name"}
            return {"found": True, "source": "campaign", "name": _masked(name), "data": rest}, set(data)
        if self.customers is None or not number:
            return None, set()
        try:
            result = await self.customers.lookup(number)
        except (CallcenterError, OSError, TimeoutError) as exc:  # the directory answers, or not
            log.info("screen pop lookup failed: %r", exc)
            return {"found": False, "outcome": "error"}, set()
        found = result.customer
        if result.outcome != "found" or found is None:
            return {"found": False, "outcome": result.outcome}, set()
        extra = {str(k): _masked(str(v)) for k, v in found.data.items() if isinstance(v, str | int | float)}
        record = {
            "found": True,
            "source": "directory",
            "name": _masked(found.name),
            "account": _masked(found.account),
            "tier": _masked(found.tier),
            "data": extra,
        }
        keys = {"name", "account", *extra}
        return record, keys

    def agent_of_call(self, call_id: str) -> ag.AgentState | None:
        """The agent on ``call_id`` now, else the one whose last call it was."""
        states = self.acd.agents.values()
        return next((s for s in states if s.call_id == call_id), None) or next(
            (s for s in states if s.wrap_call_id == call_id), None
        )


def _rona(config: Any) -> set[str]:
    """Pause reasons only the ACD uses (after missed calls): not offered on the page."""
    return {q.rona_pause_reason for q in config.queues.values() if q.rona_pause_reason}


def _masked(value: Any) -> Any:
    return wrapup.mask_card_like(value) if isinstance(value, str) else value


def _when(raw: str | None, default: float, key: str) -> float:
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPError(422, "bad_query", f"{key!r} must be UNIX seconds or an ISO date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def register_routes(router: Router, desktop: Desktop) -> None:
    """Mount the desktop's page and API (see the module's docstring)."""
    acd = desktop.acd

    def of_agent(req: web.Request, checked: dict[str, Any]) -> Target:
        agent_id = req.match_info["agent_id"]
        agent = acd.config.agents.get(agent_id)
        queues = frozenset(acd.config.queues_of(agent)) if agent is not None else frozenset()
        return Target(agent_id=agent_id, queues=queues, label=f"agent {agent_id}")

    def of_call(req: web.Request, checked: dict[str, Any]) -> Target:
        call_id = req.match_info["call_id"]
        holder = desktop.agent_of_call(call_id)
        queue = holder.wrap_queue if holder is not None and holder.call_id != call_id else None
        if holder is not None and holder.call_id == call_id:
            queue = (acd.snapshot()["calls"].get(call_id) or {}).get("queue")
        return Target(
            agent_id=holder.agent_id if holder is not None else None,
            queues=frozenset({queue}) if queue else frozenset(),
            label=f"call {call_id}",
        )

    def by(req: web.Request) -> str:
        who = principal(req)
        return who.name if who is not None else "api"

    async def agent_page(req: web.Request) -> web.StreamResponse:
        return page_response("agent.html")

    async def desk(req: web.Request) -> web.StreamResponse:
        agent_id = req.match_info["agent_id"]
        data = desktop.desk(agent_id)
        data["call"] = await desktop.screen_pop(agent_id)
        return json_response(data)

    async def call(req: web.Request) -> web.StreamResponse:
        agent_id = req.match_info["agent_id"]
        if agent_id not in acd.config.agents:
            raise HTTPError(404, "unknown_agent", f"no agent {agent_id!r}")
        return json_response({"call": await desktop.screen_pop(agent_id)})

    async def dispose(agent_id: str, b: dict[str, Any], call_id: str | None, who: str) -> web.StreamResponse:
        state, record = await acd.dispose(agent_id, b.get("code"), b.get("notes"), call_id=call_id, by=who)
        return json_response(
            {
                "call_id": record.call_id,
                "code": record.code,
                "label": record.label,
                "notes": record.notes,
                "state": state_json(state),
            }
        )

    async def agent_disposition(req: web.Request) -> web.StreamResponse:
        b = body(req)
        return await dispose(req.match_info["agent_id"], b, b.get("call_id"), by(req))

    async def call_disposition(req: web.Request) -> web.StreamResponse:
        call_id = req.match_info["call_id"]
        holder = desktop.agent_of_call(call_id)
        if holder is None:
            raise HTTPError(404, "unknown_call", f"no agent has or had call {call_id!r}")
        return await dispose(holder.agent_id, body(req), call_id, by(req))

    async def callback(req: web.Request) -> web.StreamResponse:
        b = body(req)
        at = desktop.clock.now() + float(b["minutes"]) * 60.0
        new_id = await acd.schedule_callback(req.match_info["call_id"], b.get("number"), at, by=by(req))
        return json_response({"callback_call_id": new_id, "at": at})

    async def report(req: web.Request) -> web.StreamResponse:
        if desktop.history is None:
            raise HTTPError(503, "store_unavailable", "the call log is not connected")
        now = desktop.clock.now()
        start = _when(req.query.get("from"), now - 86400.0, "from")
        end = _when(req.query.get("to"), now, "to")
        if end <= start:
            raise HTTPError(422, "bad_query", "'to' must come after 'from'")
        queues = req.query.getall("queue", []) or None
        agents = req.query.getall("agent", []) or None
        who = principal(req)
        if who is not None and who.role == "supervisor":  # its own queues only
            queues = [q for q in (queues or sorted(who.queues)) if q in who.queues] or ["-"]
        counts = await desktop.history.disposition_counts(
            start, end, queues=queues, agents=agents, timeout=30.0
        )
        return json_response({"from": start, "to": end, "rows": shares(counts)})

    state = "agent.desk"
    router.add("GET", "/agent", agent_page)
    router.add("GET", "/api/agents/{agent_id}/desk", desk, action=state, target=of_agent)
    router.add("GET", "/api/agents/{agent_id}/call", call, action=state, target=of_agent)
    router.add(
        "POST",
        "/api/agents/{agent_id}/disposition",
        agent_disposition,
        schema=DISPOSITION,
        action="call.disposition",
        target=of_agent,
    )
    router.add(
        "POST",
        "/api/calls/{call_id}/disposition",
        call_disposition,
        schema=CALL_DISPOSITION,
        action="call.disposition",
        target=of_call,
    )
    router.add(
        "POST",
        "/api/calls/{call_id}/callback",
        callback,
        schema=CALLBACK,
        action="call.control",
        target=of_call,
    )
    router.add("GET", "/api/reports/dispositions", report, action="reports.view")
