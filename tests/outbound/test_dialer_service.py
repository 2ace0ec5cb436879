"""The dialer service against a scripted AMI server (real loopback TCP, the real AMI client) and
the real private PostgreSQL: every outcome branch, record-before-Originate, restart, DNC, pause."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from typing import Any

import asyncpg
import pytest

from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import FakeClock
from callcenter.errors import CampaignError
from callcenter.outbound.contacts import Contact
from callcenter.outbound.dialer import (
    Attempt,
    CallingWindow,
    CampaignSettings,
    ContactStatus,
    Mode,
    Outcome,
)
from callcenter.outbound.runtime import CampaignRuntime, runtime_from_config
from callcenter.outbound.service import DialerService
from callcenter.store.campaigns import CampaignStore
from tests.centers import example
from tests.fakes import (
    FakeAgentPool,
    FakeAGISession,
    FakeAMIServer,
    admin_tokens,
    bearer,
    client_for,
    http_exchange,
    http_request,
    http_split,
)

T0 = datetime(2026, 6, 2, 15, 0, tzinfo=UTC).timestamp()
ALL_DAY = CallingWindow(time(0), time(23, 59, 59))
DELAYS = {
    Outcome.BUSY: 600.0,
    Outcome.NO_ANSWER: 3600.0,
    Outcome.MACHINE: 7200.0,
    Outcome.FAILED: 1800.0,
    Outcome.ABANDONED: 72 * 3600.0,
    Outcome.UNKNOWN: 3600.0,
}


def runtime(**kw: Any) -> CampaignRuntime:
    settings = CampaignSettings(
        name="spring", mode=Mode.PROGRESSIVE, window=ALL_DAY, max_attempts=3, retry_delays=DELAYS
    )
    options: dict[str, Any] = {
        "settings": settings,
        "caller_id": "+18005550100",
        "trunk": "dialer",
        "identification_prompt": "dialer-identification",
    }
    options.update(kw)
    return CampaignRuntime(**options)


def contacts(n: int) -> list[Contact]:
    return [Contact(key=f"k{i}", phone=f"+121255501{i:02d}", zones=("America/New_York",)) for i in range(n)]


def session(variables: dict[str, str], channel: str) -> FakeAGISession:
    """A FastAGI session as the ``outbound`` route sees it."""
    env = {"agi_channel": channel, "agi_network_script": names.AGI_OUTBOUND}
    return FakeAGISession(env, variables=variables)


class Rig:
    def __init__(self, server: FakeAMIServer, db_dsn: str) -> None:
        self.server = server
        self.db_dsn = db_dsn
        self.clock = FakeClock(start=T0)
        self.refuse: set[str] = set()
        self.events: asyncio.Queue[Message] = asyncio.Queue()
        self._clients: list[AMIClient] = []
        self._stores: list[CampaignStore] = []

        def originate(m: Message) -> list[list[tuple[str, str]]] | None:
            channel = m.get("Channel") or ""
            if any(number in channel for number in self.refuse):
                return [[("Response", "Error"), ("Message", "Extension does not exist.")]]
            return [[("Response", "Success"), ("Message", "Originate successfully queued")]]

        server.handlers["Originate"] = originate

    async def service(
        self, agents: FakeAgentPool, rt: CampaignRuntime, book: list[Contact] | None = None, **kw: Any
    ) -> DialerService:
        store = await CampaignStore.connect(self.db_dsn)
        self._stores.append(store)
        await store.upsert_campaign(rt)
        if book:
            await store.import_contacts(rt.id, book)
        client = client_for(self.server)
        await client.connect()
        self._clients.append(client)
        options: dict[str, Any] = {"state_poll": 0.0}
        options.update(kw)
        service = DialerService(ami=client, store=store, agents=agents, clock=self.clock, **options)
        await service.add_campaign(rt)
        service.start()
        for name in ("OriginateResponse", "Hangup"):  # after the service's own callbacks
            client.subscribe(name, self.events.put_nowait)
        return service

    def originates(self) -> list[Message]:
        return [m for _, m in self.server.actions if m.name == "Originate"]

    async def event(self, headers: list[tuple[str, str]]) -> None:
        """Send an event as Asterisk would and wait until the service has seen it."""
        self.server.send(headers)
        async with asyncio.timeout(5):
            await self.events.get()

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        for store in self._stores:
            await store.close()


@pytest.fixture
async def rig(db_dsn: str) -> AsyncIterator[Rig]:
    server = FakeAMIServer()
    await server.start()
    r = Rig(server, db_dsn)
    try:
        yield r
    finally:
        await r.close()
        await server.stop()


def variables(m: Message) -> dict[str, str]:
    return dict(v.split("=", 1) for v in m.get_all("Variable"))


async def rows(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(sql, *args, timeout=10))
    finally:
        await conn.close()


def response(uniqueid: str, ok: bool, reason: int) -> list[tuple[str, str]]:
    return [
        ("Event", "OriginateResponse"),
        ("Response", "Success" if ok else "Failure"),
        ("Channel", "PJSIP/dialer-00000001"),
        ("Context", names.CTX_OUTBOUND),
        ("Exten", "s"),
        ("Reason", str(reason)),
        ("Uniqueid", uniqueid),
    ]


def hangup(uniqueid: str, cause: int = 16) -> list[tuple[str, str]]:
    return [
        ("Event", "Hangup"),
        ("Channel", "PJSIP/dialer-00000001"),
        ("Uniqueid", uniqueid),
        ("Cause", str(cause)),
    ]


async def test_every_outcome_branch(rig: Rig) -> None:
    agents = FakeAgentPool(idle=7)
    book = contacts(7)
    rig.refuse.add(book[6].phone)
    service = await rig.service(agents, runtime(), book)
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 7)
    sent = {variables(m)[names.VAR_ATTEMPT_ID]: m for m in rig.originates()}
    by_phone = {m.get("Channel"): m for m in sent.values()}

    def ids(i: int) -> tuple[str, str]:
        m = by_phone[f"Local/{book[i].phone}@cc-dial-dialer/n"]
        return m.get("ChannelId") or "", variables(m)[names.VAR_ATTEMPT_ID]

    m0 = by_phone[f"Local/{book[0].phone}@cc-dial-dialer/n"]
    assert m0.get("Context") == names.CTX_OUTBOUND and m0.get("Exten") == "s" and m0.get("Async") == "true"
    assert m0.get("CallerID") == "+18005550100" and m0.get("Timeout") == "25000"
    assert variables(m0)[names.VAR_CAMPAIGN] == "spring" and variables(m0)[names.VAR_AMD] == "1"

    await rig.event(response(ids(0)[0], False, 5))  # busy
    await rig.event(response(ids(1)[0], False, 3))  # rang out
    await rig.event(response(ids(2)[0], False, 0))  # no channel
    await rig.event(response(ids(3)[0], True, 4))  # answered: AMD heard a machine, dialplan hung up
    await rig.event(hangup(ids(3)[0]))
    await rig.event(response(ids(4)[0], True, 4))
    await rig.event(response(ids(5)[0], True, 4))

    agents.free = ["a1"]
    person = session(
        {names.VAR_ATTEMPT_ID: ids(4)[1], names.VAR_CAMPAIGN: "spring", names.VAR_AMDSTATUS: "HUMAN"},
        "PJSIP/x-4",
    )
    await service.outbound_agi(person)
    assert agents.connected == [("a1", "PJSIP/x-4")]
    assert person.execs() and person.execs()[0][0] == "Wait" and not person.hung_up
    await rig.event(hangup(ids(4)[0]))  # the call ends later: nothing changes

    nobody = session(
        {names.VAR_ATTEMPT_ID: ids(5)[1], names.VAR_CAMPAIGN: "spring", names.VAR_AMDSTATUS: "NOTSURE"},
        "PJSIP/x-5",
    )
    await service.outbound_agi(nobody)
    assert nobody.streamed() == ["dialer-identification"] and nobody.hung_up

    await service.drain()
    got = await rows(
        rig.db_dsn,
        """SELECT a.contact_key, a.outcome, a.attempt_no, a.person_at IS NOT NULL AS live, a.agent_id,
                  c.status, c.attempts, EXTRACT(EPOCH FROM c.next_at) AS next_at
           FROM campaign_attempts a JOIN campaign_contacts c USING (campaign_id, contact_key)
           ORDER BY a.contact_key""",
    )
    table = {r["contact_key"]: r for r in got}
    expected = {
        "k0": ("busy", "pending", T0 + 600),
        "k1": ("no_answer", "pending", T0 + 3600),
        "k2": ("failed", "pending", T0 + 1800),
        "k3": ("machine", "pending", T0 + 7200),
        "k4": ("connected", "done", None),
        "k5": ("abandoned", "pending", T0 + 72 * 3600),
        "k6": ("failed", "pending", T0 + 1800),
    }
    for key, (outcome, status, next_at) in expected.items():
        r = table[key]
        assert (r["outcome"], r["status"], r["attempt_no"], r["attempts"]) == (outcome, status, 1, 1), key
        assert (None if r["next_at"] is None else float(r["next_at"])) == next_at, key
    assert table["k4"]["agent_id"] == "a1" and table["k4"]["live"] and table["k5"]["live"]
    summary = service.status("spring")
    assert summary["live_in_window"] == 2 and summary["abandoned_in_window"] == 1


async def test_machine_message_branches(rig: Rig) -> None:
    agents = FakeAgentPool(idle=2)
    service = await rig.service(agents, runtime(amd_message="renewal-message"), contacts(2))
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 2)
    a, b = rig.originates()
    assert variables(a)[names.VAR_AMD_MESSAGE] == "renewal-message"
    await rig.event(response(a.get("ChannelId") or "", True, 4))
    machine = session(
        {names.VAR_ATTEMPT_ID: variables(a)[names.VAR_ATTEMPT_ID], names.VAR_AMDSTATUS: "MACHINE"}, "c"
    )
    await service.outbound_agi(machine)
    assert machine.streamed() == ["renewal-message"] and machine.hung_up
    await rig.event(response(b.get("ChannelId") or "", True, 4))
    await rig.event(hangup(b.get("ChannelId") or ""))  # the dialplan left the message itself
    await service.drain()
    got = await rows(rig.db_dsn, "SELECT outcome, count(*) AS n FROM campaign_attempts GROUP BY outcome")
    assert {r["outcome"]: r["n"] for r in got} == {"machine_message": 2}
    done = await rows(rig.db_dsn, "SELECT status FROM campaign_contacts")
    assert {r["status"] for r in done} == {"done"}


async def test_attempt_recorded_before_originate_and_restart_never_redials(rig: Rig) -> None:
    rig.server.handlers["Originate"] = lambda m: None  # Asterisk takes the Originate and then we die
    agents = FakeAgentPool(idle=1)
    first = await rig.service(agents, runtime(), contacts(1), action_timeout=30.0)
    stepping = asyncio.create_task(first.step())
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 1)
    (sent,) = rig.originates()
    recorded = await rows(rig.db_dsn, "SELECT channel_id, outcome, attempt_no FROM campaign_attempts")
    assert [(r["channel_id"], r["outcome"], r["attempt_no"]) for r in recorded] == [
        (sent.get("ChannelId"), None, 1)
    ]
    stepping.cancel()  # the controller dies with the Originate in flight
    with contextlib.suppress(asyncio.CancelledError):
        await stepping

    rig.server.handlers["Originate"] = lambda m: [[("Response", "Success"), ("Message", "queued")]]
    second = await rig.service(agents, runtime())
    await second.step()
    assert rig.server.count("Originate") == 1  # not dialled again at restart
    lost = await rows(rig.db_dsn, "SELECT outcome, reason FROM campaign_attempts")
    assert [r["outcome"] for r in lost] == ["unknown"]
    rig.clock.advance(3600.0)  # the unknown-outcome retry delay
    await second.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 2)
    again = await rows(rig.db_dsn, "SELECT attempt_no FROM campaign_attempts ORDER BY attempt_no")
    assert [r["attempt_no"] for r in again] == [1, 2]


async def test_dnc_in_the_database_is_never_dialled(rig: Rig) -> None:
    agents = FakeAgentPool(idle=0)
    book = contacts(3)
    service = await rig.service(agents, runtime(), book, state_poll=1e9)
    await service.store.add_dnc([book[2].phone])
    await service.step()  # the first step reads the DNC list; nobody is free to call yet
    await service.store.add_dnc([book[0].phone])  # added later: the in-memory list is stale
    agents.idle = 3
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") >= 1)
    assert rig.server.count("Originate") == 1  # step() returns once every Originate is answered
    (sent,) = rig.originates()
    assert book[1].phone in (sent.get("Channel") or "")
    await service.drain()
    status = await rows(rig.db_dsn, "SELECT contact_key, status FROM campaign_contacts ORDER BY contact_key")
    got = [(r["contact_key"], r["status"]) for r in status]
    assert got == [("k0", "dnc"), ("k1", "dialing"), ("k2", "dnc")]
    assert service.dialer("spring").contact("k2").status.value == "dnc"
    assert service.dialer("spring").contact("k0").status.value == "dnc"


async def test_a_contact_the_dial_out_policy_refuses_is_never_dialled(rig: Rig) -> None:
    agents = FakeAgentPool(idle=0)
    premium = Contact(key="k9", phone="+19005550100", zones=("America/New_York",))
    book = [*contacts(2), premium]
    service = await rig.service(agents, runtime(), book, state_poll=1e9, config=example())
    await service.step()
    agents.idle = 3
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") >= 2)
    assert rig.server.count("Originate") == 2  # step() returns once every Originate is answered
    assert all(premium.phone not in (sent.get("Channel") or "") for sent in rig.originates())
    assert service.dialer("spring").contact("k9").status.value == "dnc"


async def test_pause_resume_stop_from_the_database_and_the_api(rig: Rig) -> None:
    agents = FakeAgentPool(idle=1)
    service = await rig.service(agents, runtime(), contacts(3))
    await service.store.set_state("spring", service.dialer("spring").state.PAUSED)  # as the CLI does
    await service.step()
    assert rig.server.count("Originate") == 0
    assert service.status("spring")["state"] == "paused"
    await service.resume("spring")
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 1)
    await service.stop("spring")
    agents.idle = 3
    await service.step()
    assert rig.server.count("Originate") == 1
    with pytest.raises(CampaignError) as info:
        await service.store.set_state("spring", service.dialer("spring").state.RUNNING)
    assert info.value.code == "campaign_stopped"
    summary = await service.store.status("spring", now=rig.clock.now())
    assert summary["state"] == "stopped" and summary["attempts"] == {"in_flight": 1}


async def test_a_disabled_campaign_places_no_call(rig: Rig) -> None:
    agents = FakeAgentPool(idle=3)
    service = await rig.service(agents, runtime(enabled=False), contacts(3))
    await service.step()
    assert rig.server.count("Originate") == 0
    assert service.preview_next("spring", "1001") is None
    assert (await rows(rig.db_dsn, "SELECT enabled FROM campaigns WHERE campaign_id = 'spring'"))[0][
        0
    ] is False


async def test_the_database_refuses_an_attempt_of_a_disabled_campaign(rig: Rig) -> None:
    """A controller that still believes the campaign enabled (another one, or an old config) dials
    nothing once the database says disabled: the attempt row is refused before any Originate."""
    agents = FakeAgentPool(idle=3)
    rt = runtime()
    service = await rig.service(agents, rt, contacts(3))
    await service.store.upsert_campaign(dataclasses.replace(rt, enabled=False))
    await service.step()
    assert rig.server.count("Originate") == 0
    assert await rows(rig.db_dsn, "SELECT 1 FROM campaign_attempts") == []
    await service.store.upsert_campaign(rt)  # enabled again
    agents.idle = 1
    rig.clock.advance(61.0)  # the refused contacts come back after a minute
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 1)


async def test_preview_the_agent_chooses_then_it_is_recorded_and_dialled(rig: Rig) -> None:
    agents = FakeAgentPool(idle=3)
    rt = runtime(
        settings=CampaignSettings(name="spring", mode=Mode.PREVIEW, window=ALL_DAY, retry_delays=DELAYS)
    )
    service = await rig.service(agents, rt, contacts(2))
    await service.step()
    assert rig.server.count("Originate") == 0  # preview never dials by itself
    held = service.preview_next("spring", "a7")
    assert held is not None and held.contact.key == "k0"
    service.preview_skip("spring", "k0", "a7", delay=600)
    held = service.preview_next("spring", "a7")
    assert held is not None and held.contact.key == "k1"
    attempt = await service.preview_dial("spring", "k1", "a7")
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 1)
    got = await rows(rig.db_dsn, "SELECT contact_key, agent_id, attempt_no FROM campaign_attempts")
    assert [tuple(r.values()) for r in got] == [("k1", "a7", 1)]
    assert attempt.agent_id == "a7"


async def test_lost_events_stop_counting_as_in_flight(rig: Rig) -> None:
    rig.server.handlers["Originate"] = lambda m: [[("Response", "Success"), ("Message", "queued")]]
    agents = FakeAgentPool(idle=1)
    service = await rig.service(agents, runtime(), contacts(2))
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 1)
    await service.step()
    assert rig.server.count("Originate") == 1  # the line is in flight: its agent is spoken for
    rig.clock.advance(25.0 + 61.0)  # no OriginateResponse ever came (events lost with a link)
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 2)  # the next contact
    await service.drain()
    got = await rows(
        rig.db_dsn, "SELECT contact_key, outcome, reason FROM campaign_attempts ORDER BY started_at"
    )
    assert (got[0]["contact_key"], got[0]["outcome"], got[0]["reason"]) == (
        "k0",
        "unknown",
        "no OriginateResponse",
    )
    assert service.dialer("spring").contact("k0").status.value == "pending"


async def test_database_down_means_nothing_is_dialled(rig: Rig) -> None:
    agents = FakeAgentPool(idle=2)
    service = await rig.service(agents, runtime(), contacts(2))
    await service.store.pool.close()  # PostgreSQL gone: no attempt can be recorded
    await service.step()
    assert rig.server.count("Originate") == 0
    assert service.store_failures == 2
    for key in ("k0", "k1"):
        state = service.dialer("spring").contact(key)
        assert (state.attempts, state.status.value) == (0, "pending")


def test_runtime_from_the_example_config() -> None:
    config = example()
    camp = config.campaigns["renewals"]
    rt = runtime_from_config(
        camp,
        default_region=config.center.country,
        sounds_dir=config.asterisk.sounds_dir,
        language=config.center.default_language,
    )
    assert rt.id == "renewals" and rt.exten == "renewals" and rt.queue == camp.queue
    assert rt.settings.mode is Mode.PREDICTIVE and rt.settings.max_attempts == camp.max_attempts
    assert rt.settings.retry_delay(Outcome.BUSY) == camp.retry.busy
    assert rt.settings.abandon_window == camp.abandon_window_days * 86400
    assert rt.settings.pacing.abandon_limit == camp.abandon_limit
    assert rt.identification_prompt == f"{config.asterisk.sounds_dir}/en/{camp.identification_prompt}"
    assert rt.amd_message == f"{config.asterisk.sounds_dir}/en/{camp.amd_message}"
    bare = runtime_from_config(config.campaigns["reminders"])
    assert bare.amd_message is None and bare.identification_prompt == "dialer-identification"


async def test_http_api_pause_resume_stop_and_preview(rig: Rig) -> None:
    import json

    from callcenter.outbound.http import register_routes
    from callcenter.web.http import HTTPServer, Router

    agents = FakeAgentPool(idle=0)
    rt = runtime(
        settings=CampaignSettings(name="spring", mode=Mode.PREVIEW, window=ALL_DAY, retry_delays=DELAYS)
    )
    service = await rig.service(agents, rt, contacts(2))
    router = Router()
    register_routes(router, service)
    server = HTTPServer(router, host="127.0.0.1", port=0, authenticator=admin_tokens())
    await server.start()
    try:

        async def call(method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, Any]:
            raw = json.dumps(body).encode() if body is not None else b""
            request = http_request(path, raw, method, bearer())
            status, payload = http_split(await http_exchange(server.port, request))
            return status, json.loads(payload)

        status, listing = await call("GET", "/api/campaigns")
        assert status == 200 and listing["spring"]["state"] == "running"
        assert (await call("POST", "/api/campaigns/spring/pause"))[1]["state"] == "paused"
        assert (await call("POST", "/api/campaigns/spring/resume"))[1]["state"] == "running"
        status, held = await call("POST", "/api/campaigns/spring/preview/next", {"agent_id": "1001"})
        assert status == 200 and held["contact"] == "k0" and held["phone"] == "+12125550100"
        status, err = await call(
            "POST", "/api/campaigns/spring/preview/dial", {"agent_id": "1002", "contact": "k0"}
        )
        assert (status, err["error"]["code"]) == (409, "not_held")
        status, dialled = await call(
            "POST", "/api/campaigns/spring/preview/dial", {"agent_id": "1001", "contact": "k0"}
        )
        assert status == 200 and dialled["number"] == 1
        await rig.server.wait_for(lambda: rig.server.count("Originate") == 1)
        status, err = await call("POST", "/api/campaigns/spring/preview/next", {})
        assert (status, err["error"]["code"], err["error"]["field"]) == (422, "missing_field", "agent_id")
        assert (await call("POST", "/api/campaigns/spring/stop"))[1]["state"] == "stopped"
        assert (await call("POST", "/api/campaigns/spring/resume"))[0] == 409
        assert (await call("GET", "/api/campaigns/nope"))[0] == 409
    finally:
        await server.close()


async def test_a_supervisor_pauses_the_campaigns_of_its_own_queues_only(rig: Rig) -> None:
    import json

    from callcenter.outbound.http import register_routes
    from callcenter.web.access import Principal
    from callcenter.web.http import HTTPServer, Router
    from tests.fakes import TokenTable

    # "renewals" dials for the sales queue (dialplans/campaigns.yaml)
    rt = runtime(
        settings=CampaignSettings(name="renewals", mode=Mode.PREVIEW, window=ALL_DAY, retry_delays=DELAYS)
    )
    service = await rig.service(FakeAgentPool(idle=0), rt, contacts(1), config=example())
    router = Router()
    register_routes(router, service)
    tokens = TokenTable(
        {
            "t-grace": Principal("grace", "supervisor", queues=frozenset({"sales"}), agent_id="9001"),
            "t-hugo": Principal("hugo", "supervisor", queues=frozenset({"billing"}), agent_id="9002"),
            "t-ann": Principal("ann", "agent", agent_id="1001"),
        }
    )
    server = HTTPServer(router, host="127.0.0.1", port=0, authenticator=tokens)
    await server.start()
    try:

        async def call(path: str, who: str) -> tuple[int, Any]:
            request = http_request(path, b"", "POST", bearer(who))
            status, payload = http_split(await http_exchange(server.port, request))
            return status, json.loads(payload)

        for who in ("t-hugo", "t-ann"):
            status, err = await call("/api/campaigns/renewals/pause", who)
            assert (status, err["error"]["code"]) == (403, "forbidden")
        assert service.status("renewals")["state"] == "running"
        status, done = await call("/api/campaigns/renewals/pause", "t-grace")
        assert (status, done["state"]) == (200, "paused")
        status, done = await call("/api/campaigns/renewals/resume", "t-grace")
        assert (status, done["state"]) == (200, "running")
        status, err = await call("/api/campaigns/renewals/stop", "t-grace")  # stopping is an admin's
        assert (status, err["error"]["code"]) == (403, "forbidden")
    finally:
        await server.close()


async def test_each_attempt_holds_an_agent_and_every_end_frees_it(rig: Rig) -> None:
    """Progressive: an agent is held before each dial (inbound cannot take it), and freed at once
    by busy, no answer, failure or machine; the person who answers gets the held agent."""
    agents = FakeAgentPool(idle=5)
    service = await rig.service(agents, runtime(), contacts(5))
    await service.step()
    await rig.server.wait_for(lambda: rig.server.count("Originate") == 5)
    sent = {variables(m)[names.VAR_ATTEMPT_ID]: m.get("ChannelId") or "" for m in rig.originates()}
    assert set(agents.holding) == set(sent) and len(set(agents.holding.values())) == 5  # one agent each
    ids = sorted(sent)
    await rig.event(response(sent[ids[0]], False, 5))  # busy
    await rig.event(response(sent[ids[1]], False, 3))  # no answer
    await rig.event(response(sent[ids[2]], False, 0))  # failed
    await rig.event(response(sent[ids[3]], True, 4))  # answered, AMD: machine, hung up
    await rig.event(hangup(sent[ids[3]]))
    assert agents.released == ids[:4] and set(agents.holding) == {ids[4]}
    await rig.event(response(sent[ids[4]], True, 4))
    agents.free = ["a1"]
    person = session(
        {names.VAR_ATTEMPT_ID: ids[4], names.VAR_CAMPAIGN: "spring", names.VAR_AMDSTATUS: "HUMAN"}, "PJSIP/x"
    )
    await service.outbound_agi(person)
    assert agents.connected == [("a1", "PJSIP/x")] and agents.holding == {}


async def test_no_agent_to_hold_means_no_dial(rig: Rig) -> None:
    agents = FakeAgentPool(idle=3)
    agents.refuse_holds = True  # inbound took every agent after the load was read
    service = await rig.service(agents, runtime(), contacts(3))
    await service.step()
    assert rig.server.count("Originate") == 0
    assert all(s.attempts == 0 and s.status.value == "pending" for s in service.dialer("spring").contacts())
    assert await rows(rig.db_dsn, "SELECT 1 FROM campaign_attempts") == []
    rt = runtime(
        settings=CampaignSettings(name="spring", mode=Mode.PREVIEW, window=ALL_DAY, retry_delays=DELAYS)
    )
    service = await rig.service(agents, rt)
    held = service.preview_next("spring", "a7")
    assert held is not None
    with pytest.raises(CampaignError) as err:
        await service.preview_dial("spring", held.contact.key, "a7")
    assert err.value.code == "agent_not_available"
    assert rig.server.count("Originate") == 0


async def test_the_database_refuses_attempts_outside_the_window_or_past_the_maximum(rig: Rig) -> None:
    """Defence in depth: whatever a dialer believes, the attempt row (so the Originate, which
    only follows it) is refused outside the contact's calling window and past max_attempts."""
    window = CallingWindow(time(9), time(20), frozenset(range(5)))  # weekdays 09-20, New York
    settings = CampaignSettings(
        name="spring", mode=Mode.PROGRESSIVE, window=window, max_attempts=1, retry_delays=DELAYS
    )
    service = await rig.service(FakeAgentPool(idle=0), runtime(settings=settings), contacts(1))
    store = service.store
    (k0,) = contacts(1)
    night = T0 + 12 * 3600  # 23:00 in New York (T0 is 11:00 on a Tuesday)
    early = T0 - 3 * 3600  # 08:00
    saturday = T0 + 4 * 86400
    for at in (night, early, saturday):
        with pytest.raises(CampaignError) as err:
            await store.record_attempt(Attempt(f"a{int(at)}", "spring", k0, 1, at), channel_id="x")
        assert err.value.code == "attempt_refused"
    await store.record_attempt(Attempt("ok", "spring", k0, 1, T0), channel_id="cc-dial-ok")
    await store.release_contact("spring", "k0", status=ContactStatus.PENDING, next_at=T0)
    with pytest.raises(CampaignError) as err:
        await store.record_attempt(Attempt("second", "spring", k0, 2, T0 + 60), channel_id="y")
    assert err.value.code == "attempt_refused"
    got = await rows(rig.db_dsn, "SELECT attempt_id FROM campaign_attempts")
    assert [r["attempt_id"] for r in got] == ["ok"]
