"""Composition root: builds the controller from config and owns every task in one TaskGroup.

``Controller`` wires the shells together — the call-log writer, the AMI client, the FastAGI server
(routes ``ivr``, ``outbound`` and whatever the feature/spy services add), the ACD with its
recorder, the dialer, the HTTP API with the wallboard and ``/metrics`` — and runs them until told
to stop. Nothing below this module imports it; the CLI (``callcenter run``, ``callcenter demo``)
calls it. Start order: writer, database pool, AMI, ACD (rebuilds state from AMI and the database),
FastAGI, dialer, HTTP. Stop order is the reverse, then the writer flushes what is left (to
PostgreSQL, or to its disk spool when the database is away: nothing is lost).

``reload`` takes a new configuration live (``callcenter apply`` over ``POST /api/config/reload``,
or SIGHUP to ``callcenter run``): it is read and validated whole first, so a config with a problem
changes nothing; then every service takes it at once. Calls in progress keep what they started
with (an offer rings with the ring timeout it was made with, an IVR run keeps its flow); what
starts next uses the new one. ``config_version`` is its content hash (``GET /api/status``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from callcenter.acd import desktop as acd_desktop
from callcenter.acd import features as acd_features
from callcenter.acd import http as acd_http
from callcenter.acd import service as acd_mod
from callcenter.acd.callback_offer import CallbackOffers
from callcenter.acd.recorder import Recorder
from callcenter.app.plugins import Plugin, PluginFactory
from callcenter.asterisk import names
from callcenter.asterisk.agi_server import FastAGIServer
from callcenter.asterisk.ami_client import AMIClient
from callcenter.asterisk.channels import LiveChannels
from callcenter.clock import Clock, RealClock
from callcenter.config import model as cm
from callcenter.config.version import config_version
from callcenter.errors import CallcenterError, ConfigError, DomainError, ValidationError
from callcenter.inbound.service import IvrService
from callcenter.reporting import feed
from callcenter.reporting.metrics import Registry
from callcenter.reporting.wallboard import DialerView, QueueView, Snapshot, today_bounds
from callcenter.store import reports
from callcenter.store.acd import PgACDStore
from callcenter.store.audit import PgAudit
from callcenter.store.callbacks import PgCallbackStore
from callcenter.store.customers import CustomerDirectory
from callcenter.store.dispositions import PgCallHistory
from callcenter.store.users import PgUsers
from callcenter.store.writer import CallLogWriter
from callcenter.web.feed import FeedStreams
from callcenter.web.http import HTTPServer, Router, json_response, principal, trusted_hosts_for
from callcenter.web.pages import page, register_pages
from callcenter.web.session import BrowserSessions

log = logging.getLogger("callcenter")


@dataclass(frozen=True)
class Links:
    """Where the controller connects and listens; defaults come from the config's ``asterisk``."""

    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    agi_bind: str
    agi_port: int
    http_host: str | None = "127.0.0.1"
    http_port: int = 8080
    # Names and addresses the HTTP API answers to beyond loopback and its bound address
    # (``$CALLCENTER_HTTP_HOSTS``, comma-separated): any other ``Host`` is refused.
    http_trusted_hosts: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: cm.Config, **overrides: Any) -> Links:
        a = config.asterisk
        env = os.environ
        values: dict[str, Any] = {
            "ami_host": env.get("CALLCENTER_AMI_HOST", a.ami.host),
            "ami_port": int(env.get("CALLCENTER_AMI_PORT", a.ami.port)),
            "ami_user": env.get("CALLCENTER_AMI_USER", a.ami.username),
            "ami_secret": env.get("CALLCENTER_AMI_SECRET", a.ami.secret.value),
            "agi_bind": a.agi.bind,
            "agi_port": a.agi.port,
            "http_trusted_hosts": tuple(
                h.strip() for h in env.get("CALLCENTER_HTTP_HOSTS", "").split(",") if h.strip()
            ),
        }
        # None leaves a setting at its default, except http_host where None turns HTTP off.
        values.update({k: v for k, v in overrides.items() if v is not None or k == "http_host"})
        return cls(**values)


@dataclass
class QueueCounters:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_in_target: int = 0
    answer_wait: float = 0.0
    handled: int = 0
    handle_time: float = 0.0


def queue_limits(q: cm.Queue) -> feed.Limits:
    """A queue's thresholds for the hub, the configured ones or defaults from its own target."""
    t = q.thresholds
    sl = t.service_level or cm.Threshold(q.sl_percent, max(0.0, q.sl_percent - 15.0))
    lw = t.longest_wait or cm.Threshold(q.sl_seconds, 2 * q.sl_seconds)
    wt = t.waiting or cm.Threshold()
    return feed.Limits(
        service_level_amber=None if sl.amber is None else sl.amber / 100.0,
        service_level_red=None if sl.red is None else sl.red / 100.0,
        longest_wait_amber=lw.amber,
        longest_wait_red=lw.red,
        waiting_amber=None if wt.amber is None else int(wt.amber),
        waiting_red=None if wt.red is None else int(wt.red),
    )


class Controller:
    """The whole controller. ``await run(stop)`` until ``stop`` is set; ``ready`` is set once every
    listener is up. ``snapshot()`` is the wallboard's picture at any time."""

    def __init__(
        self,
        config: cm.Config,
        *,
        dsn: str,
        run_dir: Path,
        clock: Clock,
        links: Links,
        plugins: Sequence[PluginFactory] = (),
        writer_batch_delay: float = 1.0,
        counter_refresh: float = 2.0,
        feed_clock: Clock | None = None,
        feed_interval: float = 1.0,
        source: Callable[[], cm.Config] | None = None,
    ) -> None:
        self.counter_refresh = counter_refresh
        # Reads and validates the configuration again (the YAML the controller was started
        # with); ``reload()`` without a config uses it.
        self.source = source
        self.config_version = config_version(config)
        self._reloading = asyncio.Lock()
        self._counters: dict[str, QueueCounters] = {}
        self._agent_counts: dict[str, tuple[int, float]] = {}
        # The event hub (one stream of changes for the desktop, the console and the wallboard);
        # people's screens are paced in wall time, also when the demo's clock runs faster.
        self.hub = feed.Hub()
        self.feed_clock = feed_clock or RealClock()
        self.feed_interval = feed_interval
        self._levels: dict[str, dict[str, str]] = {}
        self._published: dict[str, Any] | None = None
        self._published_at = 0.0
        self._agent_stats_sent: dict[str, tuple[int, float | None]] = {}
        self.config = config
        self.dsn = dsn
        self.run_dir = Path(run_dir)
        self.clock = clock
        self.links = links
        self.ready = asyncio.Event()
        self.metrics = Registry()
        self.started_at = clock.now()
        self._plugin_factories = list(plugins or [])
        self.plugins: list[Plugin] = []
        self.writer = CallLogWriter(
            dsn, spool_dir=self.run_dir / "spool", clock=clock, batch_delay=writer_batch_delay
        )
        self.ami = AMIClient(
            host=links.ami_host,
            port=links.ami_port,
            username=links.ami_user,
            secret=links.ami_secret,
            clock=clock,
            connect_timeout=config.asterisk.ami.connect_timeout,
            action_timeout=config.asterisk.ami.action_timeout,
            ping_interval=config.asterisk.ami.ping_interval,
        )
        self.channels = LiveChannels(self.ami)  # which FastAGI sessions to believe
        self.channels.attach()
        rec_dir = Path(config.recording.directory)
        if not rec_dir.is_absolute():
            rec_dir = self.run_dir / rec_dir
        self.recorder = Recorder.from_config(self.ami, self.writer, clock, config.recording)
        self.recorder_dir = rec_dir
        self.pool: Any = None
        self.callback_store = PgCallbackStore(dsn)
        self.acd = acd_mod.ACD(
            config,
            self.ami,
            self.writer,
            clock,
            recorder=self.recorder,
            store=PgACDStore(dsn),
            callbacks=self.callback_store,
        )
        self.acd.on_change = self._on_change
        self.feed = FeedStreams(self.hub, clock=self.feed_clock, initial=self.feed_initial, stamp=clock.now)
        self.ivr: IvrService | None = None
        self.dialer: Any = None
        self.monitor: Any = None
        self.agi: FastAGIServer | None = None
        self.http: HTTPServer | None = None
        self.router = Router()
        self.sessions: BrowserSessions | None = None
        self._register_metrics()

    # ------------------------------------------------------------------ wallboard / metrics
    def snapshot(self, *, duration: float | None = None) -> Snapshot:
        snap = self.acd.snapshot()
        now = self.clock.now()
        waiting_by_queue: dict[str, list[float]] = {}
        for call in snap["calls"].values():
            if call["state"] in ("waiting", "queued", "offered", "ringing") and call["agent_id"] is None:
                waiting_by_queue.setdefault(call["queue"], []).append(now - float(call["queued_at"]))
        counters = self.queue_counters()
        by_state: dict[str, int] = {}
        by_queue: dict[str, dict[str, int]] = {}
        for agent_id, agent in snap["agents"].items():
            status = agent["status"]
            by_state[status] = by_state.get(status, 0) + 1
            cfg = self.config.agents.get(agent_id)
            for qid in self.config.queues_of(cfg) if cfg is not None else ():
                counts = by_queue.setdefault(qid, {})
                counts[status] = counts.get(status, 0) + 1
        queues = []
        for qid, q in self.config.queues.items():
            c = counters.get(qid, QueueCounters())
            waits = waiting_by_queue.get(qid, [])
            limits = queue_limits(q)
            waiting = int(snap["waiting"].get(qid, len(waits)))
            longest = max(waits, default=0.0)
            sl = c.answered_in_target / c.offered if c.offered else None
            queues.append(
                QueueView(
                    name=qid,
                    label=q.name,
                    waiting=waiting,
                    longest_wait=longest,
                    offered=c.offered,
                    answered=c.answered,
                    abandoned=c.abandoned,
                    answered_in_target=c.answered_in_target,
                    sl_target_seconds=float(q.sl_seconds),
                    sl_target_fraction=float(q.sl_percent) / 100.0,
                    ewt=self._ewt(qid),
                    answer_wait_total=c.answer_wait,
                    handled=c.handled,
                    handle_total=c.handle_time,
                    agents=by_queue.get(qid, {}),
                    levels=feed.levels(limits, service_level=sl, longest_wait=longest, waiting=waiting),
                    limits={
                        "service_level_amber": limits.service_level_amber,
                        "service_level_red": limits.service_level_red,
                        "longest_wait_amber": limits.longest_wait_amber,
                        "longest_wait_red": limits.longest_wait_red,
                        "waiting_amber": limits.waiting_amber,
                        "waiting_red": limits.waiting_red,
                    },
                )
            )
        dialers: tuple[DialerView, ...] = ()
        for plugin in self.plugins:
            if plugin.dialers is not None:
                dialers += plugin.dialers()
        stats = self.ivr.stats if self.ivr is not None else None
        return Snapshot(
            at=now,
            elapsed=now - self.started_at,
            duration=duration,
            queues=tuple(queues),
            agents_by_state=by_state,
            dialers=dialers,
            calls_active=len(snap["calls"]) + (stats.active if stats else 0),
            calls_total=stats.started if stats else 0,
            monitoring=len(self.monitor.sessions) if self.monitor is not None else 0,
            timezone=self.config.center.timezone,
            center=self.config.center.name,
        )

    def _ewt(self, queue: str) -> float | None:
        """The expected wait a new caller of ``queue`` would be told (the router's estimate)."""
        try:
            return self.acd.router.ewt(queue)
        except (KeyError, ValueError, CallcenterError):
            return None

    def queue_counters(self) -> dict[str, QueueCounters]:
        """Offered/answered/abandoned per queue so far (refreshed from the call log)."""
        return dict(self._counters)

    async def refresh_counters(self) -> None:
        """Read today's counts (the center's day, in its time zone) of every queue and agent from
        the call log once."""
        if self.pool is None:
            return
        since, until = today_bounds(self.clock.now(), self.config.center.timezone)
        targets = {qid: q.sl_seconds for qid, q in self.config.queues.items()}
        async with self.pool.acquire(timeout=10) as conn:
            counts = await reports.live_queue_counts(conn, since=since, until=until, targets=targets)
            agents = await reports.live_agent_counts(conn, since=since, until=until)
        self._counters = {qid: QueueCounters(**c) for qid, c in counts.items()}  # type: ignore[arg-type]
        self._agent_counts = agents

    # ------------------------------------------------------------------ the event hub
    def _agent_stats(self, agent_id: str) -> dict[str, Any]:
        handled, total = self._agent_counts.get(agent_id, (0, 0.0))
        cfg = self.config.agents.get(agent_id)
        return {
            "name": cfg.name if cfg is not None else agent_id,
            "calls_today": handled,
            "aht": total / handled if handled else None,
        }

    def _on_change(self, change: feed.Change) -> None:
        """A change from the ACD: an agent's carries its day's figures too; then the hub. Called
        inside the ACD's handling of an event: a failure here is logged, never the ACD's."""
        try:
            if change.kind == feed.AGENT_STATE and change.agent_id is not None:
                data = {**change.data, **self._agent_stats(change.agent_id)}
                change = dataclasses.replace(change, data=data)
            self.hub.publish(change)
        except Exception:  # the screens must never stop call handling
            log.exception("event hub: change %s not published", change.kind)

    def _agent_change(self, agent_id: str, now: float, calls: dict[str, Any]) -> feed.Change:
        s = self.acd.agents[agent_id]
        call = calls.get(s.call_id or "") if s.call_id else None
        change = self.acd.agent_change(agent_id, s, now, call["queue"] if call else None)
        return dataclasses.replace(change, data={**change.data, **self._agent_stats(agent_id)})

    def feed_initial(self) -> list[feed.Change]:
        """The current picture, a new reader's first push: the snapshot and every agent."""
        now = self.clock.now()
        out = [feed.Change(feed.SNAPSHOT, now, data=self.snapshot().to_dict(), key="snapshot")]
        calls = self.acd.snapshot()["calls"]
        out += [self._agent_change(a, now, calls) for a in sorted(self.acd.agents)]
        return out

    def publish_picture(self) -> None:
        """Publish the wallboard snapshot (when it changed, or every 5 s as a heartbeat of the
        controller), the thresholds crossed since the last one, and agents whose day's figures
        changed."""
        snap = self.snapshot()
        now = snap.at
        levels = {q.name: dict(q.levels) for q in snap.queues}
        values = {
            q.name: {"service_level": q.service_level, "longest_wait": q.longest_wait, "waiting": q.waiting}
            for q in snap.queues
        }
        for change in feed.crossings(self._levels, levels, values, now):
            self.hub.publish(change)
        self._levels = levels
        data = snap.to_dict()
        same = {k: v for k, v in data.items() if k not in ("at", "elapsed", "progress")}
        wall = self.feed_clock.monotonic()
        if same != self._published or wall - self._published_at >= 5.0:
            self.hub.publish(feed.Change(feed.SNAPSHOT, now, data=data, key="snapshot"))
            self._published, self._published_at = same, wall
        calls: dict[str, Any] | None = None
        for agent_id in sorted(self.acd.agents):
            st = self._agent_stats(agent_id)
            figures = (st["calls_today"], st["aht"])
            if self._agent_stats_sent.get(agent_id) != figures:
                self._agent_stats_sent[agent_id] = figures
                calls = self.acd.snapshot()["calls"] if calls is None else calls
                self.hub.publish(self._agent_change(agent_id, now, calls))

    async def _feed_loop(self) -> None:
        while True:
            try:
                self.publish_picture()
            except Exception:  # the screens must never stop the controller
                log.exception("wallboard picture not published")
            await self.feed_clock.sleep(self.feed_interval)

    async def _counter_loop(self) -> None:
        while True:
            try:
                await self.refresh_counters()
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("wallboard counters not refreshed: %s", exc)
            await self.clock.sleep(self.counter_refresh)

    def _register_metrics(self) -> None:
        def writer_stats() -> dict[tuple[tuple[str, str], ...], float]:
            st = self.writer.stats
            return {
                (("kind", k),): float(getattr(st, k))
                for k in (
                    "submitted",
                    "queued",
                    "written",
                    "spooled",
                    "replayed",
                    "pending_batches",
                    "not_durable",
                    "dropped",
                    "rejected",
                    "corrupt",
                )
                if isinstance(getattr(st, k, None), int | float)
            }

        self.metrics.gauge_fn("call_log_rows", "Call-log rows by fate", writer_stats)

        def agents() -> dict[tuple[tuple[str, str], ...], float]:
            counts: dict[str, int] = {}
            for a in self.acd.snapshot()["agents"].values():
                counts[a["status"]] = counts.get(a["status"], 0) + 1
            return {(("state", s),): float(n) for s, n in counts.items()}

        self.metrics.gauge_fn("agents", "Agents by state", agents)

        def waiting() -> dict[tuple[tuple[str, str], ...], float]:
            return {(("queue", q),): float(n) for q, n in self.acd.snapshot()["waiting"].items()}

        self.metrics.gauge_fn("calls_waiting", "Calls waiting per queue", waiting)
        self.metrics.gauge_fn(
            "call_log_spool_bytes", "Bytes in the call-log spool", lambda: self.writer.stats.spool_bytes
        )
        self.metrics.gauge_fn(
            "call_log_db_up",
            "1 when the call-log writer reaches PostgreSQL",
            lambda: float(self.writer.stats.db_up),
        )
        self.metrics.gauge_fn(
            "ami_connected", "1 while the AMI link is up", lambda: float(self.ami.connected)
        )
        self.metrics.gauge_fn(
            "ami_reconnects", "AMI reconnects since start", lambda: float(self.ami.reconnects)
        )

        def agi() -> dict[tuple[tuple[str, str], ...], float]:
            if self.agi is None:
                return {}
            return {
                (("kind", k),): float(getattr(self.agi, k))
                for k in ("served", "refused", "bad", "failed", "active", "denied", "untrusted")
                if isinstance(getattr(self.agi, k, None), int)
            }

        self.metrics.gauge_fn("fastagi_sessions", "FastAGI sessions by fate", agi)

        def queue_counts() -> dict[tuple[tuple[str, str], ...], float]:
            out: dict[tuple[tuple[str, str], ...], float] = {}
            for qid, c in self._counters.items():
                for k in ("offered", "answered", "abandoned", "answered_in_target"):
                    out[(("kind", k), ("queue", qid))] = float(getattr(c, k))
            return out

        self.metrics.gauge_fn(
            "queue_calls", "Inbound calls per queue since the controller started", queue_counts
        )

        def dialer_abandon() -> dict[tuple[tuple[str, str], ...], float]:
            out: dict[tuple[tuple[str, str], ...], float] = {}
            for plugin in self.plugins:
                if plugin.dialers is not None:
                    for d in plugin.dialers():
                        out[(("campaign", d.campaign),)] = d.abandonment_rate
            return out

        self.metrics.gauge_fn(
            "dialer_abandonment_rate",
            "Abandoned share of live-answered calls (rolling window)",
            dialer_abandon,
        )

    def _routes(self) -> None:
        async def status(req: web.Request) -> web.StreamResponse:
            return json_response({**self.snapshot().to_dict(), "config_version": self.config_version})

        async def reload(req: web.Request) -> web.StreamResponse:
            try:
                version = await self.reload()
            except ConfigError as exc:
                problems = [str(p) for p in exc.problems] if isinstance(exc, ValidationError) else [str(exc)]
                return json_response(
                    {"error": {"code": exc.code, "message": exc.message, "problems": problems}}, 422
                )
            return json_response({"config_version": version})

        async def metrics(req: web.Request) -> web.StreamResponse:
            return web.Response(
                body=self.metrics.render().encode(),
                headers={"Content-Type": "text/plain; version=0.0.4"},
            )

        async def wallboard(req: web.Request) -> web.StreamResponse:
            # Filled on first paint: the current picture rides in the page itself.
            first = json.dumps(self.snapshot().to_dict(), default=str, separators=(",", ":"))
            first = first.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            html = page("wallboard.html").replace(b"{{INITIAL}}", first.encode())
            return web.Response(
                body=html,
                content_type="text/html",
                charset="utf-8",
                headers={"Cache-Control": "no-store"},
            )

        async def console(req: web.Request) -> web.StreamResponse:
            """What the supervisor console needs besides the stream: pause reasons, the queues
            and campaigns the user may act on."""
            who = principal(req)
            mine = (lambda q: True) if who is None or who.role == "admin" else who.queues.__contains__
            return json_response(
                {
                    "pause_reasons": [
                        {"code": r.code, "name": r.name} for r in self.config.pause_reasons.values()
                    ],
                    "queues": [
                        {"id": q.id, "name": q.name} for q in self.config.queues.values() if mine(q.id)
                    ],
                    "campaigns": [
                        {"id": c.id, "queue": c.queue, "mode": str(c.mode)}
                        for c in self.config.campaigns.values()
                        if mine(c.queue)
                    ],
                    "agents": {
                        a.id: {"name": a.name, "queues": list(self.config.queues_of(a))}
                        for a in self.config.agents.values()
                        if any(mine(q) for q in self.config.queues_of(a))
                    },
                }
            )

        # The wallboard page, its stream and /metrics carry aggregate counts only (no caller data):
        # a wall screen and a Prometheus scraper read them without a token.
        self.router.add("GET", "/api/status", status, action="status.view")
        self.router.add("POST", "/api/config/reload", reload, action="config.apply")
        self.router.add("GET", "/metrics", metrics)
        self.router.add("GET", "/api/console", console, action="agents.view")
        self.router.add("GET", "/", wallboard)
        self.router.add("GET", "/wallboard", wallboard)
        self.feed.register(self.router)
        register_pages(self.router)
        acd_http.register_routes(self.router, self.acd)
        self.desktop = acd_desktop.Desktop(
            self.acd,
            self.clock,
            history=PgCallHistory(self.pool) if self.pool is not None else None,
            customers=CustomerDirectory(self.pool) if self.pool is not None else None,
        )
        acd_desktop.register_routes(self.router, self.desktop)
        if self.pool is not None:
            # People's sessions run on wall time, also when the demo's clock runs faster.
            self.sessions = BrowserSessions(PgUsers(self.pool), RealClock())
            self.sessions.register(self.router)

    # ------------------------------------------------------------------ live configuration
    async def reload(self, config: cm.Config | None = None) -> str:
        """Take ``config`` (default: read again from ``source``) live and return its version.

        A config that does not load (``ValidationError``) or cannot be taken live
        (``DomainError``: a logged-in agent removed) changes nothing. Settings of the links
        themselves (``asterisk``: AMI, FastAGI) take effect at the next start."""
        async with self._reloading:
            if config is None:
                if self.source is None:
                    raise DomainError("this controller has no configuration source", code="no_source")
                config = await asyncio.to_thread(self.source)
            self._check_reload(config)
            self.acd.reload(config)
            if self.ivr is not None:
                self.ivr.reload(config)
            if self.monitor is not None:
                self.monitor.reload(config)
            if self.dialer is not None:
                await self.dialer.reload(config)
            if config.asterisk != self.config.asterisk:
                log.warning("the asterisk section changed: it takes effect when the controller restarts")
            self.config = config
            self.config_version = config_version(config)
            log.info("configuration %s is live", self.config_version)
            return self.config_version

    def _check_reload(self, config: cm.Config) -> None:
        gone = [a for a in self.config.agents if a not in config.agents]
        busy = [a for a in gone if self.acd.agent_state(a).status.value != "logged_out"]
        if busy:
            raise DomainError(
                f"agents {', '.join(busy)} are logged in but absent from the new configuration: "
                "log them out first",
                code="agent_logged_in",
            )

    # ------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down in order and flush the call log.

        Two nested TaskGroups: the outer owns the call-log writer, the inner every service. On
        stop (or when a service fails) the listeners close first, the inner group's tasks are
        cancelled, and only then is the writer closed — gracefully, so every record submitted
        so far reaches PostgreSQL or the disk spool; nothing is lost with the cancelled tasks."""
        async with asyncio.TaskGroup() as outer:
            outer.create_task(self.writer.run(), name="call-log-writer")
            try:
                async with asyncio.TaskGroup() as tg:
                    await self._start(tg)
                    # Start-up made many long-lived objects; moving them out of the collector's
                    # reach keeps its sweeps from stalling the loop (p99 of AGI commands ~100 ms
                    # -> ~10 ms under load, measured by bench/ivr_throughput).
                    gc.collect()
                    gc.freeze()
                    self.ready.set()
                    await stop.wait()
                    await self._stop_listening()
                    raise _Stop
            except* _Stop:
                pass
            finally:
                await self._shutdown()

    async def _start(self, tg: asyncio.TaskGroup) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8, timeout=30)
        await self.ami.connect()
        tg.create_task(self._counter_loop(), name="wallboard-counters")
        tg.create_task(self._feed_loop(), name="event-feed")
        acd_task = tg.create_task(self.acd.run(), name="acd")
        await _wait_ready(self.acd.ready, acd_task)
        customers = CustomerDirectory(self.pool)
        self.ivr = IvrService(
            self.config,
            writer=self.writer,
            distributor=self.acd,
            customers=customers,
            clock=self.clock,
        )
        features = acd_features.AgentFeatures(self.acd)
        self.callback_offers = CallbackOffers(self.acd)
        routes: dict[str, Callable[[Any], Awaitable[None]]] = {
            names.AGI_IVR: self.ivr.handle,
            names.AGI_FEATURE: features.handle,
            names.AGI_CALLBACK: self.callback_offers.handle,
        }
        for factory in self._plugin_factories:
            plugin = await factory(self)
            if plugin is None:
                continue
            self.plugins.append(plugin)
            routes.update(plugin.routes)
            if plugin.task is not None:
                tg.create_task(plugin.task(), name=plugin.name)
            if plugin.http is not None:
                plugin.http(self.router)
        self.agi = FastAGIServer(
            routes,
            host=self.links.agi_bind,
            port=self.links.agi_port,
            allow=self.config.asterisk.agi.allow,
            channels=self.channels,
        )
        await self.agi.start()
        self._routes()
        if self.links.http_host is not None:
            self.http = HTTPServer(
                self.router,
                host=self.links.http_host,
                port=self.links.http_port,
                trusted_hosts=trusted_hosts_for(self.links.http_host, self.links.http_trusted_hosts),
                authenticator=PgUsers(self.pool),
                audit=PgAudit(self.pool),
                sessions=self.sessions,
            )
            await self.http.start()
        log.info(
            "controller ready: AMI %s:%s, FastAGI %s:%s, HTTP %s",
            self.links.ami_host,
            self.links.ami_port,
            self.links.agi_bind,
            self.agi.port,
            f"{self.links.http_host}:{self.http.port}" if self.http else "off",
        )

    async def _stop_listening(self) -> None:
        """No new calls or requests: close the HTTP and FastAGI listeners (sessions end)."""
        with contextlib.suppress(CallcenterError, OSError):
            if self.http is not None:
                await self.http.close()
        with contextlib.suppress(CallcenterError, OSError):
            if self.agi is not None:
                await self.agi.close()

    async def _shutdown(self) -> None:
        await self._stop_listening()  # again, for a failure before the stop (idempotent)
        for plugin in reversed(self.plugins):
            if plugin.close is not None:
                with contextlib.suppress(CallcenterError, OSError):
                    await plugin.close()
        with contextlib.suppress(CallcenterError, OSError):
            await self.ami.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.callback_store.close(), 10)
        try:
            await self.writer.close(timeout=30.0)
        except (CallcenterError, OSError, TimeoutError) as exc:
            log.error("call-log writer did not close cleanly: %s (rows stay in the spool)", exc)
        if self.pool is not None:
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.pool.close(), 10)


async def login_all(controller: Controller) -> int:
    """Log in every configured agent who is logged out (the simulated agents' shift start)."""
    n = 0
    for agent_id in controller.config.agents:
        if controller.acd.agent_state(agent_id).status.value == "logged_out":
            await controller.acd.login(agent_id)
            n += 1
    return n


async def logout_all(controller: Controller, reason: str = "shift_end") -> int:
    """Log out every agent still logged in (the simulated agents' shift end), so the call log's
    login periods end with the run instead of lasting until the next one. An agent whose state
    does not allow a logout (still on a call) stays as is."""
    n = 0
    for agent_id in controller.config.agents:
        if controller.acd.agent_state(agent_id).status.value != "logged_out":
            try:
                await controller.acd.logout(agent_id, reason)
            except CallcenterError as exc:
                log.info("agent %s not logged out at the end of the run: %s", agent_id, exc)
                continue
            n += 1
    return n


class _Stop(Exception):
    """Raised inside the TaskGroup to cancel every task when the controller is told to stop."""


async def _wait_ready(event: asyncio.Event, task: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(event.wait())
    done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED, timeout=60)
    if waiter not in done:
        waiter.cancel()
        if task.done():
            task.result()  # re-raise what stopped the ACD
        raise CallcenterError("the ACD did not become ready within 60 s")
