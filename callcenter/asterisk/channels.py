"""Shell: the live channels the AMI reported, so that a FastAGI session is believed only for one.

A FastAGI peer tells us its channel in ``agi_channel`` and ``agi_uniqueid``; anyone who can reach
the port can claim any channel. :class:`LiveChannels` (the ``ChannelRegistry`` seam) answers
``confirm(uniqueid, channel)`` from what the AMI link reported: ``Newchannel`` adds, ``Rename``
renames, ``Hangup`` removes, and an ``EventGap`` forgets everything (a channel may have ended
while the link was down). A claim of a live channel under another unique id is refused at once.
A session can reach the controller before its ``Newchannel`` has been
read, so an unknown channel is waited for (``settle`` seconds); then, for channels born before
the controller or during a gap, Asterisk is asked once (``Status`` on that channel, a ``call``
class action). A channel is confirmed only when its current name and unique id both match.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from callcenter.asterisk import names
from callcenter.asterisk.ami import Message
from callcenter.asterisk.events import EventGap, Hangup, Newchannel
from callcenter.errors import ActionLostError, AMIActionError, AMIConnectionError, AMITimeoutError

if TYPE_CHECKING:
    from callcenter.ports import AMILink

__all__ = ["LiveChannels"]

log = logging.getLogger(__name__)


class LiveChannels:
    """Unique id -> current channel name of every live channel the AMI reported."""

    def __init__(self, ami: AMILink, *, settle: float = 1.0) -> None:
        self._ami = ami
        self.settle = settle
        self._names: dict[str, str] = {}  # unique id -> channel name
        self._ids: dict[str, str] = {}  # channel name -> unique id
        self._waiters: dict[str, list[asyncio.Future[str]]] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self.asked = 0  # Status look-ups made for channels the events had not shown

    def __len__(self) -> int:
        return len(self._names)

    @property
    def waiting(self) -> int:
        """Sessions waiting for their channel's ``Newchannel``."""
        return sum(len(w) for w in self._waiters.values())

    def attach(self) -> None:
        """Follow the AMI link's channel events (before it connects, so none is missed)."""
        if self._unsubscribe:
            return
        self._unsubscribe = [
            self._ami.on(Newchannel, self._newchannel),
            self._ami.subscribe("Rename", self._rename),  # no typed view: Channel, Newname, Uniqueid
            self._ami.on(Hangup, self._hangup),
            self._ami.on_gap(self._gap),
        ]

    def detach(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    # ------------------------------------------------------------ events (inline in the reader)
    def _learn(self, uniqueid: str, channel: str) -> None:
        old = self._names.get(uniqueid)
        if old is not None and self._ids.get(old) == uniqueid:
            del self._ids[old]
        self._names[uniqueid] = channel
        self._ids[channel] = uniqueid
        for waiter in self._waiters.pop(uniqueid, ()):
            if not waiter.done():
                waiter.set_result(channel)

    def _newchannel(self, event: Newchannel) -> None:
        if event.channel.uniqueid and event.channel.channel:
            self._learn(event.channel.uniqueid, event.channel.channel)

    def _rename(self, m: Message) -> None:
        uniqueid, channel = m.get("Uniqueid"), m.get("Newname")
        if uniqueid and channel:
            self._learn(uniqueid, channel)

    def _hangup(self, event: Hangup) -> None:
        uniqueid = event.channel.uniqueid
        if uniqueid:
            channel = self._names.pop(uniqueid, None)
            if channel is not None and self._ids.get(channel) == uniqueid:
                del self._ids[channel]

    def _gap(self, gap: EventGap) -> None:
        self._names.clear()
        self._ids.clear()

    # ------------------------------------------------------------ the question
    async def confirm(self, uniqueid: str, channel: str, *, timeout: float) -> bool:
        """Whether ``channel`` is live with ``uniqueid`` (waits at most ``timeout`` seconds)."""
        if not uniqueid or not channel:
            return False
        if self._ids.get(channel, uniqueid) != uniqueid:
            return False  # that channel is live under another unique id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        known = self._names.get(uniqueid)
        if known is None:
            waiter: asyncio.Future[str] = loop.create_future()
            self._waiters.setdefault(uniqueid, []).append(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self.settle, timeout)):
                        known = await waiter
            finally:
                waiting = self._waiters.get(uniqueid)
                if waiting is not None and waiter in waiting:
                    waiting.remove(waiter)
                    if not waiting:
                        del self._waiters[uniqueid]
        if known is None:
            known = await self._ask(uniqueid, channel, max(0.0, deadline - loop.time()))
        return known == channel

    async def _ask(self, uniqueid: str, channel: str, timeout: float) -> str | None:
        """Ask Asterisk about ``channel``; its name if it is live with ``uniqueid``."""
        if timeout <= 0:
            return None
        self.asked += 1
        try:
            items = await self._ami.send_action_list(
                names.ACTION_STATUS, {"Channel": channel}, timeout=timeout
            )
        except AMIActionError:
            return None  # "No such channel"
        except (AMIConnectionError, AMITimeoutError, ActionLostError) as exc:
            log.warning("could not ask the AMI about channel %r: %s", channel, exc)
            return None
        for item in items:
            if item.name == "Status" and item.get("Uniqueid") == uniqueid and item.get("Channel") == channel:
                if uniqueid not in self._names:
                    self._learn(uniqueid, channel)
                return channel
        return None
