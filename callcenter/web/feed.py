"""Shell: the event hub's server-sent-event streams, one per audience, filtered by who asks.

``FeedStreams(hub, clock=..., initial=...)`` serves a subscriber of the hub
(``callcenter.reporting.feed``) as ``text/event-stream``; ``register(router)`` mounts::

    GET /wallboard/events     public: aggregate kinds only (the snapshot, threshold crossings)
    GET /supervisor/events    a supervisor (its queues' agents, calls, thresholds) or an admin (all);
                              an agent gets 403, nobody signed in 401
    GET /api/events           any signed-in user: an agent its own agent and calls, a supervisor its
                              queues, an admin everything (the agent desktop reads this one)

Each push is one SSE message ``data: {"at": <controller's time>, "changes": [<change>, ...]}``
(a change is ``Change.to_dict()``). The first push carries the current picture (``initial()``:
the snapshot and every agent's state, filtered); later pushes come at most every ``min_interval``
wall seconds with whatever changed meanwhile (coalesced by the hub), and an empty push every
``heartbeat`` seconds when nothing did. What a reader sees is decided per change by the access
table (``callcenter.web.access``, action ``events.view``). A reader that falls behind by more than
the hub's ``max_pending`` changes, or whose socket takes no data for ``write_timeout`` seconds,
is dropped (its browser reconnects and starts again from the current picture); a reader never
holds the controller up: ``Hub.publish`` only queues.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from callcenter.clock import Clock
from callcenter.reporting import feed
from callcenter.web.access import Principal, Target, decide
from callcenter.web.http import Router, closing, principal

Sees = Callable[[feed.Change], bool]


def public_sees(change: feed.Change) -> bool:
    """The public wallboard: aggregates only."""
    return change.kind in feed.PUBLIC_KINDS


def sees_for(who: Principal | None) -> Sees:
    """What ``who`` may receive (None: the public wallboard)."""
    if who is None:
        return public_sees

    def sees(change: feed.Change) -> bool:
        if change.kind == feed.SNAPSHOT:
            return decide(who, "status.view", Target()).allowed
        target = Target(agent_id=change.agent_id, queues=change.queues)
        return decide(who, "events.view", target).allowed

    return sees


def encode(at: float, changes: list[feed.Change]) -> bytes:
    data = json.dumps(
        {"at": at, "changes": [c.to_dict() for c in changes]}, default=str, separators=(",", ":")
    )
    return b"data: " + data.encode() + b"\n\n"


class FeedStreams:
    """The SSE side of the hub. ``clock`` paces pushes in wall time (a demo's faster clock would
    otherwise push many times a second)."""

    def __init__(
        self,
        hub: feed.Hub,
        *,
        clock: Clock,
        initial: Callable[[], list[feed.Change]] = list,
        stamp: Callable[[], float] | None = None,
        min_interval: float = 0.5,
        heartbeat: float = 5.0,
        write_timeout: float = 10.0,
    ) -> None:
        self.hub = hub
        self.clock = clock
        self.initial = initial
        self.stamp = stamp or clock.now
        self.min_interval = min_interval
        self.heartbeat = heartbeat
        self.write_timeout = write_timeout
        self.open = 0
        self.pushes = 0
        self.bytes = 0
        self.changed = asyncio.Event()  # set when a stream opens or ends

    async def serve(self, req: web.Request, sees: Sees) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(req)
        ready = asyncio.Event()
        sub = self.hub.subscribe(sees, ready.set)
        self.open += 1
        self.changed.set()
        ending = asyncio.ensure_future(closing(req).wait())
        try:
            first = [c for c in self.initial() if sees(c)]
            sub.take()  # what happened before now is in that picture (no await in between)
            ready.clear()
            await self._write(resp, first)
            while not ending.done():
                woken = asyncio.ensure_future(ready.wait())
                beat = asyncio.ensure_future(self.clock.sleep(self.heartbeat))
                await asyncio.wait({woken, beat, ending}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                beat.cancel()
                if ending.done() or sub.dropped:
                    break
                ready.clear()
                await self._write(resp, sub.take())
                # The coalescing window: changes meanwhile wait in the hub, keyed ones replaced.
                pause = asyncio.ensure_future(self.clock.sleep(self.min_interval))
                await asyncio.wait({pause, ending}, return_when=asyncio.FIRST_COMPLETED)
                pause.cancel()
        except (ConnectionError, RuntimeError, TimeoutError):
            pass  # the reader went away or stopped reading
        finally:
            ending.cancel()
            self.hub.unsubscribe(sub)
            self.open -= 1
            self.changed.set()
        return resp

    async def _write(self, resp: web.StreamResponse, changes: list[feed.Change]) -> None:
        data = encode(self.stamp(), changes)
        await asyncio.wait_for(resp.write(data), self.write_timeout)
        self.pushes += 1
        self.bytes += len(data)

    def register(self, router: Router) -> None:
        async def wallboard(req: web.Request) -> web.StreamResponse:
            return await self.serve(req, public_sees)

        async def personal(req: web.Request) -> web.StreamResponse:
            return await self.serve(req, sees_for(principal(req)))

        router.add("GET", "/wallboard/events", wallboard, stream=True)
        router.add("GET", "/supervisor/events", personal, stream=True, action="agents.view")
        router.add("GET", "/api/events", personal, stream=True, action="status.view")

    def stats(self) -> dict[str, Any]:
        return {"open": self.open, "pushes": self.pushes, "bytes": self.bytes}
