"""The agent desktop's API on a real loopback server, over the real ACD (a FakeAMI plays the PBX):
dispositions for one's own call only, codes checked, notes cleaned, every post audited; the
screen pop with the caller's data masked; the page and its assets served."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callcenter.acd import agents as ag
from callcenter.acd.desktop import Desktop, register_routes
from callcenter.acd.http import register_routes as register_acd
from callcenter.asterisk import names
from callcenter.config.model import Config
from callcenter.reporting.dispositions import DispositionRecord
from callcenter.web.access import Principal
from callcenter.web.auth import AuditEntry
from callcenter.web.http import HTTPServer, Router
from callcenter.web.pages import register_pages
from tests.centers import example
from tests.fakes import (
    AcdRig,
    TokenTable,
    acd_rig,
    bearer,
    http_exchange,
    http_request,
    http_split,
)

TOKENS = {
    "t-1001": Principal("alice", "agent", agent_id="1001"),
    "t-1002": Principal("bob", "agent", agent_id="1002"),
    "t-lee": Principal("lee", "supervisor", frozenset({"billing"}), agent_id="9002"),
    "t-sue": Principal("sue", "supervisor", frozenset({"sales"})),
    "t-root": Principal("root", "admin"),
}
CARD = "4111111111111111"


class Audit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record(self, entry: AuditEntry, *, timeout: float) -> None:
        self.entries.append(entry)


class History:
    """The call log at the seam: one call's IVR path, the caller's earlier calls."""

    async def call_context(self, call_id: str, *, timeout: float) -> Mapping[str, Any]:
        return {
            "did": "+18005550199",
            "caller_number": None,
            "started_at": 1.0,
            "ivr_path": [{"node": "card", "type": "collect", "outcome": "ok", "input": CARD}],
        }

    async def recent_calls(
        self, caller_number: str, *, exclude: str, limit: int, timeout: float
    ) -> list[Mapping[str, Any]]:
        return [
            {"call_id": "old-1", "started_at": 1.0, "queue": "sales", "disposition": "sale", "notes": CARD}
        ]

    async def disposition_counts(self, start: float, end: float, **kw: Any) -> list[Mapping[str, Any]]:
        return [
            {"dimension": "queue", "name": "sales", "code": "sale", "label": "Sale made", "calls": 3},
            {"dimension": "queue", "name": "sales", "code": "none", "label": "", "calls": 1},
        ]


@dataclass
class Site:
    rig: AcdRig
    port: int
    audit: Audit

    async def send(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = bearer(token) if token else ""
        status, data = http_split(await http_exchange(self.port, http_request(path, raw, method, headers)))
        return status, json.loads(data) if data.strip().startswith(b"{") else {"raw": data.decode()}


@pytest.fixture(scope="module")
def config() -> Config:
    return example()


@pytest.fixture
async def site(config: Config, tmp_path: Path) -> AsyncIterator[Site]:
    async with acd_rig(config, tmp_path) as rig:
        router = Router()
        register_acd(router, rig.acd)
        register_routes(router, Desktop(rig.acd, rig.clock, history=History()))
        register_pages(router)
        audit = Audit()
        server = HTTPServer(router, authenticator=TokenTable(dict(TOKENS)), audit=audit)
        await server.start()
        try:
            yield Site(rig, server.port, audit)
        finally:
            await server.close()


async def handled(rig: AcdRig, agent_id: str, call_id: str, queue: str = "sales") -> None:
    """``agent_id`` (the only one ready) takes ``call_id`` and the call ends: it wraps up."""
    await rig.acd.login(agent_id)
    caller = await rig.call(call_id, queue, data={"account": "A-77", "card": CARD})
    leg, channel = await rig.answer(caller)
    assert rig.acd.agent_state(agent_id).status is ag.Status.ON_CALL
    await rig.hangup(channel, leg)
    assert rig.acd.agent_state(agent_id).status is ag.Status.WRAP_UP


async def test_an_agent_gives_the_disposition_of_its_own_call_only(site: Site) -> None:
    rig = site.rig
    await handled(rig, "1001", "c1")
    await rig.acd.pause("1001", "break")  # waits for the disposition
    await handled(rig, "1002", "c2")
    assert rig.acd.agent_state("1001").pending == "pause"

    # no token: 401; another agent's call: 403 (by agent, and by call)
    status, body = await site.send("POST", "/api/agents/1001/disposition", None, {"code": "sale"})
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    status, body = await site.send("POST", "/api/agents/1002/disposition", "t-1001", {"code": "sale"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await site.send("POST", "/api/calls/c2/disposition", "t-1001", {"code": "sale"})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    # a code the queue does not have, none at all, an unknown field: 422 with a stable code
    for sent, code in (
        ({"code": "renewed"}, "unknown_disposition"),
        ({}, "disposition_required"),
        ({"code": "sale", "colour": "red"}, "unknown_field"),
        ({"code": 7}, "wrong_type"),
    ):
        status, body = await site.send("POST", "/api/agents/1001/disposition", "t-1001", sent)
        assert (status, body["error"]["code"]) == (422, code), sent
    # the call must be the agent's current or last one
    status, body = await site.send(
        "POST", "/api/agents/1001/disposition", "t-1001", {"code": "sale", "call_id": "c2"}
    )
    assert (status, body["error"]["code"]) == (409, "wrong_call")
    assert rig.acd.agent_state("1001").status is ag.Status.WRAP_UP

    notes = "Wants a quote\r\nby Friday\x1b[2J\u202e" + " padding" * 150
    status, body = await site.send(
        "POST", "/api/agents/1001/disposition", "t-1001", {"code": "sale", "notes": notes, "call_id": "c1"}
    )
    assert status == 200, body
    assert (body["call_id"], body["code"], body["label"]) == ("c1", "sale", "Sale made")
    assert body["notes"].startswith("Wants a quote\nby Friday[2J padding") and len(body["notes"]) <= 1000
    # the wrap-up ended; the pause asked during it starts now
    assert (body["state"]["status"], body["state"]["reason"]) == ("paused", "break")
    (record,) = rig.sink.of(DispositionRecord)
    assert (record.call_id, record.agent_id, record.queue, record.code, record.outcome, record.given_by) == (
        "c1",
        "1001",
        "sales",
        "sale",
        "given",
        "alice",
    )
    # by call id, for the agent who has it
    status, body = await site.send("POST", "/api/calls/c2/disposition", "t-1002", {"code": "no_sale"})
    assert status == 200 and body["state"]["status"] == "available"
    # a supervisor outside the call's queue may not; an admin may fix it
    status, body = await site.send("POST", "/api/calls/c2/disposition", "t-lee", {"code": "sale"})
    assert status == 403
    status, body = await site.send("POST", "/api/calls/c2/disposition", "t-root", {"code": "sale"})
    assert status == 200 and rig.sink.of(DispositionRecord)[-1].given_by == "root"
    # every post was audited, refused or done, with its stable code
    posts = [(e.who, e.action, e.status, e.code) for e in site.audit.entries if "disposition" in e.path]
    assert ("-", "", 401, "unauthenticated") in [(w, "", s, c) for w, _, s, c in posts if w == "-"]
    assert ("alice", "call.disposition", 403, "forbidden") in posts
    assert ("alice", "call.disposition", 422, "unknown_disposition") in posts
    assert ("alice", "call.disposition", 200, "ok") in posts
    assert len(posts) == 12


async def test_a_timed_out_wrap_up_is_stored_as_none_and_a_late_disposition_replaces_it(site: Site) -> None:
    rig = site.rig
    await handled(rig, "1001", "c1")
    await rig.advance(rig.acd.config.queues["sales"].wrapup + 1)
    assert rig.acd.agent_state("1001").status is ag.Status.AVAILABLE
    (missing,) = rig.sink.of(DispositionRecord)
    assert (missing.call_id, missing.code, missing.outcome, missing.given_by) == (
        "c1",
        "none",
        "timed_out",
        "system",
    )
    await rig.advance(5)
    status, body = await site.send("POST", "/api/agents/1001/disposition", "t-1001", {"code": "no_sale"})
    assert status == 200 and body["state"]["status"] == "available"
    late = rig.sink.of(DispositionRecord)[-1]
    assert (late.code, late.outcome) == ("no_sale", "given") and late.at > missing.at


async def test_the_screen_pop_shows_the_call_with_card_digits_masked(site: Site) -> None:
    rig = site.rig
    status, body = await site.send("GET", "/api/agents/1001/call", "t-1001")
    assert status == 200 and body == {"call": None}
    await rig.acd.login("1001")
    await rig.call("c9", "sales", data={"account": "A-77", "card": CARD})
    status, body = await site.send("GET", "/api/agents/1001/desk", "t-1001")
    assert status == 200
    pop = body["call"]
    assert (pop["stage"], pop["queue"], pop["did"]) == (
        "offered",
        {"id": "sales", "name": "Sales"},
        "+18005550199",
    )
    assert pop["caller"]["number"] == "+15551230000"
    assert pop["collected"] == {"account": "A-77", "card": "************1111"}
    assert pop["ivr_path"][0]["input"] == "************1111"
    assert pop["recent_calls"][0]["notes"] == "************1111"
    assert pop["disposition_required"] and {"code": "sale", "label": "Sale made"} in pop["dispositions"]
    assert body["state"]["status"] in ("reserved", "ringing")
    assert {"code": "lunch", "name": "Lunch"} in body["pause_reasons"]
    assert all(r["code"] != "missed" for r in body["pause_reasons"])  # the RONA reason is the ACD's
    assert any(a["extension"] == "2002" for a in body["transfer"]["agents"])
    status, body = await site.send("GET", "/api/agents/1002/desk", "t-1001")
    assert status == 403
    status, body = await site.send("GET", "/api/agents/1001/call", None)
    assert status == 401


async def test_the_page_its_assets_and_the_disposition_report(site: Site) -> None:
    status, body = await site.send("GET", "/agent")
    assert status == 200 and 'src="/static/agent.js"' in body["raw"] and "/static/agent.css" in body["raw"]
    status, body = await site.send("GET", "/static/agent.js")
    assert status == 200 and 'new EventSource("/api/events")' in body["raw"]
    status, body = await site.send("GET", "/static/agent.css")
    assert status == 200
    status, body = await site.send("GET", "/api/reports/dispositions", "t-1001")
    assert status == 403
    status, body = await site.send("GET", "/api/reports/dispositions?from=2026-12-01T00:00:00", "t-root")
    assert status == 200
    assert [(r["code"], r["calls"], r["share"]) for r in body["rows"]] == [
        ("sale", 3, 0.75),
        ("none", 1, 0.25),
    ]
    status, body = await site.send("GET", "/api/reports/dispositions?from=yesterday", "t-root")
    assert (status, body["error"]["code"]) == (422, "bad_query")


async def test_an_agent_holds_its_own_call_and_a_supervisor_in_scope_may_too(site: Site) -> None:
    rig = site.rig
    await rig.acd.login("1001")
    caller = await rig.call("ch", "sales")
    leg, channel = await rig.answer(caller)
    # another agent, a supervisor of other queues: 403; nobody's call: 404-like refusal
    status, body = await site.send("POST", "/api/calls/ch/hold", "t-1002")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await site.send("POST", "/api/calls/ch/hold", "t-lee")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert rig.acd.snapshot()["calls"]["ch"]["held"] is False
    status, body = await site.send("POST", "/api/calls/ch/hold", "t-1001")
    assert (status, body) == (200, {"call_id": "ch", "held": True})
    moved = rig.ami.actions("Redirect")[-1]
    assert (moved["Context"], moved["ExtraChannel"]) == (names.CTX_HELD, channel)
    status, body = await site.send("POST", "/api/calls/ch/hold", "t-1001")
    assert (status, body["error"]["code"]) == (409, "already_held")
    status, body = await site.send("POST", "/api/calls/ch/transfer", "t-1001", {"queue": "billing"})
    assert (status, body["error"]["code"]) == (409, "on_hold")
    status, body = await site.send("POST", "/api/calls/ch/unhold", "t-sue")
    assert (status, body) == (200, {"call_id": "ch", "held": False})
    status, body = await site.send("POST", "/api/calls/ch/unhold", "t-1001")
    assert (status, body["error"]["code"]) == (409, "not_held")
    status, body = await site.send("POST", "/api/calls/nobody/hold", "t-root")
    assert (status, body["error"]["code"]) == (409, "unknown_call")
    posts = [(e.who, e.action, e.status, e.code) for e in site.audit.entries if "hold" in e.path]
    assert ("bob", "call.control", 403, "forbidden") in posts
    assert ("alice", "call.control", 200, "ok") in posts
    assert ("alice", "call.control", 409, "already_held") in posts
    assert ("sue", "call.control", 200, "ok") in posts
    assert len(posts) == 7
    await rig.hangup(caller)
    assert all(h["Channel"] != channel for h in rig.ami.actions("Hangup"))  # not held: its Bridge() ends it
    await rig.hangup(channel, leg)


async def test_an_agent_schedules_a_callback_to_its_customer(site: Site) -> None:
    rig = site.rig
    await handled(rig, "1001", "c1")
    status, body = await site.send("POST", "/api/calls/c1/callback", "t-1002", {"minutes": 60})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await site.send("POST", "/api/calls/c1/callback", "t-1001", {"minutes": 0})
    assert (status, body["error"]["code"]) == (422, "out_of_range")
    # the caller's own number (+1 555...) is not a dialable one: the dial-out policy says so
    status, body = await site.send("POST", "/api/calls/c1/callback", "t-1001", {"minutes": 60})
    assert (status, body["error"]["code"]) == (403, "dial_out_refused")
    status, body = await site.send(
        "POST", "/api/calls/c1/callback", "t-1001", {"minutes": 60, "number": "+19005550100"}
    )
    assert (status, body["error"]["code"]) == (403, "dial_out_refused")
    status, body = await site.send(
        "POST", "/api/calls/c1/callback", "t-1001", {"minutes": 60, "number": "+12125550100"}
    )
    assert status == 200, body
    new_id = body["callback_call_id"]
    assert new_id.startswith("c1-cb") and body["at"] == rig.clock.now() + 3600
    assert rig.acd.call_state(new_id) == "retry"
    (scheduled,) = [r for r in rig.sink.calls() if r.call_id == new_id]
    assert (scheduled.callback_of, scheduled.direction, scheduled.caller_number) == (
        "c1",
        "outbound",
        "+12125550100",
    )
    status, body = await site.send("POST", "/api/agents/1001/disposition", "t-1001", {"code": "follow_up"})
    assert status == 200 and body["state"]["status"] == "available"
    originated = len(rig.ami.actions("Originate"))
    await rig.advance(3590)
    assert len(rig.ami.actions("Originate")) == originated  # not before its time
    await rig.advance(20)
    # its time has come, but it is before 09:00 where the number is: it waits for the window
    local = dt.datetime.fromtimestamp(rig.clock.now(), ZoneInfo("America/New_York"))
    assert local.hour < 9 and len(rig.ami.actions("Originate")) == originated
    opens = local.replace(hour=9, minute=0, second=0, microsecond=0).timestamp()
    await rig.advance(opens - rig.clock.now() + 5)
    o = rig.ami.last_originate()
    assert len(rig.ami.actions("Originate")) == originated + 1
    assert o["Context"] == names.CTX_TRANSFER and f"{names.VAR_TRANSFER_TARGET}=+12125550100" in o["Variable"]
    assert rig.acd.agent_state("1001").status in (ag.Status.RESERVED, ag.Status.RINGING)
