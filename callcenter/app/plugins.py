"""Composition root: the features added to the controller after IVR and ACD (the dialer, the
supervisors' monitor), each as a ``Plugin``: its FastAGI routes, long-lived task, HTTP routes and
wallboard lines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from callcenter.acd.service import ACD
from callcenter.asterisk import names
from callcenter.asterisk.ami_client import AMIClient
from callcenter.clock import Clock
from callcenter.config import model as cm
from callcenter.outbound import http as outbound_http
from callcenter.outbound.pool import AcdAgentPool, blend_rules
from callcenter.outbound.runtime import runtimes_from_config
from callcenter.outbound.service import DialerService
from callcenter.reporting.wallboard import DialerView
from callcenter.store.campaigns import CampaignStore
from callcenter.store.writer import CallLogWriter
from callcenter.supervision import http as supervision_http
from callcenter.supervision.service import MonitorService
from callcenter.web.http import Router


class Host(Protocol):
    """What a plugin factory takes from the controller it joins."""

    config: cm.Config
    dsn: str
    clock: Clock
    ami: AMIClient
    acd: ACD
    writer: CallLogWriter
    dialer: Any
    monitor: Any


@dataclass
class Plugin:
    """A feature added to the controller after the core ones (the supervisor's monitor, the
    dialer): ``routes`` are FastAGI script -> handler, ``task`` a long-lived coroutine, ``http``
    mounts its API on the router, ``snapshot`` adds to the wallboard."""

    name: str
    routes: dict[str, Callable[[Any], Awaitable[None]]] = field(default_factory=dict)
    task: Callable[[], Coroutine[Any, Any, None]] | None = None
    http: Callable[[Router], None] | None = None
    dialers: Callable[[], tuple[DialerView, ...]] | None = None
    close: Callable[[], Awaitable[None]] | None = None


PluginFactory = Callable[[Host], Awaitable[Plugin | None]]


async def dialer_plugin(ctl: Host) -> Plugin | None:
    """The outbound dialer: every campaign of the config, its ``outbound`` FastAGI route, its
    pacing loop, and its state on the wallboard. Contacts come from ``callcenter campaign import``
    (or the demo's import)."""
    if not ctl.config.campaigns:
        return None
    store = await CampaignStore.connect(ctl.dsn)
    runtimes = runtimes_from_config(ctl.config)
    pool = AcdAgentPool(
        ctl.acd,
        {rt.id: rt.queue for rt in runtimes},
        skills={rt.id: rt.skills for rt in runtimes},
        blends=blend_rules(runtimes),
    )
    service = DialerService(ami=ctl.ami, store=store, agents=pool, clock=ctl.clock, config=ctl.config)
    for rt in runtimes:
        await service.add_campaign(rt)
    ctl.dialer = service

    def views() -> tuple[DialerView, ...]:
        out = []
        for campaign_id in service.campaign_ids():
            st = service.status(campaign_id)
            outcomes = st.get("outcomes") or {}
            assert isinstance(outcomes, dict)  # noqa: S101 - the summary's own shape
            pacing = st.get("pacing") or ""
            out.append(
                DialerView(
                    campaign=campaign_id,
                    mode=str(st.get("mode", "")) + (" (fallback)" if st.get("fallback") else ""),
                    state=str(st.get("state", "")),
                    dial_ratio=float(st.get("gain") or 1.0),  # type: ignore[arg-type]
                    in_flight=int(st.get("in_flight") or 0),  # type: ignore[call-overload]
                    attempts=int(sum(int(v) for v in outcomes.values())),
                    connected=int(outcomes.get("connected", 0)),
                    abandoned=int(outcomes.get("abandoned", 0)),
                    abandonment_rate=float(st.get("abandonment_rate") or 0.0),  # type: ignore[arg-type]
                    reason=str(pacing)[:80],
                )
            )
        return tuple(out)

    return Plugin(
        name="dialer",
        routes={names.AGI_OUTBOUND: service.outbound_agi},
        task=service.run,
        dialers=views,
        http=lambda router: outbound_http.register_routes(router, service),
        close=store.close,
    )


async def monitor_plugin(ctl: Host) -> Plugin | None:
    """Supervisors' listen / whisper / barge: the ``spy`` FastAGI route, the monitoring API, and
    PCI pauses passed on so that a listening supervisor hears nothing of a card number."""
    service = MonitorService(ctl.config, writer=ctl.writer, acd=ctl.acd, ami=ctl.ami, clock=ctl.clock)
    detach = service.attach()
    ctl.acd.pci_listeners.append(service.pci_changed)
    ctl.monitor = service

    async def close() -> None:
        detach()
        service.close()

    return Plugin(
        name="monitor",
        routes={names.AGI_SPY: service.handle},
        http=lambda router: supervision_http.register_routes(router, service),
        close=close,
    )


def standard_plugins() -> list[PluginFactory]:
    """The services beyond IVR and ACD that every controller runs."""
    return [dialer_plugin, monitor_plugin]
