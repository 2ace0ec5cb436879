"""Shell: a live, per-agent feed of changes for the agent desktop, as server-sent events.

``AgentFeed`` stands between the ACD and the call-log writer on the ``RecordSink`` seam: every
record passes on unchanged, and each agent state change (``AgentStateChange``) and disposition
(``DispositionRecord``) is also told to that agent's open streams. ``GET
/api/agents/{agent_id}/events`` (the agent itself, a supervisor of its queues, an admin) streams
them::

    event: agent
    data: {"agent_id": "1001", "kind": "state", "status": "on_call", "reason": "answered", "at": ...}

A comment line every ``keepalive`` seconds keeps proxies from closing an idle stream; a stream
that stops reading is dropped (its queue is bounded), never waited for. Streams end when the
server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from callcenter.config import model as cm
from callcenter.ports import RecordSink
from callcenter.reporting.dispositions import DispositionRecord
from callcenter.reporting.records import AgentStateChange, LogRecord
from callcenter.web.access import Target
from callcenter.web.http import Router, closing

QUEUE_LIMIT = 64


class AgentFeed:
    """The ``RecordSink`` tee and the agents' streams."""

    def __init__(self, inner: RecordSink, *, keepalive: float = 15.0) -> None:
        self.inner = inner
        self.keepalive = keepalive
        self._streams: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self.dropped = 0

    def submit(self, record: LogRecord) -> None:
        self.inner.submit(record)
        if isinstance(record, AgentStateChange):
            self.tell(
                record.agent_id,
                {
                    "kind": "state",
                    "status": record.state,
                    "reason": record.reason,
                    "call_id": record.call_id,
                    "at": record.at,
                },
            )
        elif isinstance(record, DispositionRecord):
            self.tell(
                record.agent_id,
                {"kind": "disposition", "call_id": record.call_id, "code": record.code, "at": record.at},
            )

    def tell(self, agent_id: str, event: dict[str, Any]) -> None:
        for q in list(self._streams.get(agent_id, ())):
            if q.full():  # a stream that stopped reading is dropped
                self.dropped += 1
                self._streams[agent_id].discard(q)
                continue
            q.put_nowait({"agent_id": agent_id, **event})

    def streams(self, agent_id: str) -> int:
        return len(self._streams.get(agent_id, ()))

    async def stream(self, req: web.Request, agent_id: str) -> web.StreamResponse:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._streams.setdefault(agent_id, set()).add(q)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        ending = asyncio.ensure_future(closing(req).wait())
        try:
            await resp.prepare(req)
            await asyncio.wait_for(resp.write(b": connected\n\n"), 10.0)
            while not ending.done():
                getter = asyncio.ensure_future(q.get())
                done, _ = await asyncio.wait(
                    {getter, ending}, timeout=self.keepalive, return_when="FIRST_COMPLETED"
                )
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if not ending.done():
                        await asyncio.wait_for(resp.write(b": keepalive\n\n"), 10.0)
                    continue
                data = json.dumps(getter.result(), default=str, sort_keys=True)
                await asyncio.wait_for(resp.write(f"event: agent\ndata: {data}\n\n".encode()), 10.0)
                if q not in self._streams.get(agent_id, ()):
                    break  # dropped for falling behind: the page reconnects and reloads
        except (ConnectionError, RuntimeError, TimeoutError):
            pass  # the page went away
        finally:
            ending.cancel()
            self._streams.get(agent_id, set()).discard(q)
        return resp

    def register(self, router: Router, config_of: Any) -> None:
        """Mount ``GET /api/agents/{agent_id}/events``; ``config_of()`` is the current config."""

        def of_agent(req: web.Request, checked: dict[str, Any]) -> Target:
            agent_id = req.match_info["agent_id"]
            config: cm.Config = config_of()
            agent = config.agents.get(agent_id)
            queues = frozenset(config.queues_of(agent)) if agent is not None else frozenset()
            return Target(agent_id=agent_id, queues=queues, label=f"agent {agent_id}")

        async def events(req: web.Request) -> web.StreamResponse:
            return await self.stream(req, req.match_info["agent_id"])

        router.add(
            "GET", "/api/agents/{agent_id}/events", events, stream=True, action="agent.desk", target=of_agent
        )
