"""Shell: the simulated PBX, a stand-in for Asterisk 22 that speaks AMI (server) and FastAGI
(client) over TCP, runs the rendered dialplan, and hosts simulated callers, agents and outbound
targets. Start it with :class:`SimulatedPBX` (see ``callcenter.sim.server``)."""

from __future__ import annotations

from callcenter.sim.server import SimulatedPBX

__all__ = ["SimulatedPBX"]
