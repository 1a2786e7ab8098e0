"""Helpers of the handoff tests (imported by `conftest.py` and the test modules).

Sides         the edge (through the gateway's leaf) and cloud replicas (on the hub),
              each a `SessionHost` over the real agent engine with a scripted model
Model         the model of one side: a `ScriptedBackend` every session there shares,
              so a test can hold its replies (`gate`) or look at what it was asked
conversation  the (role, content) pairs of a running session
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client

from shared.agent import AgentSession
from shared.agent.testing import ScriptedBackend
from shared.compat import timeout
from shared.messages import AgentEventBase, SessionSnapshot
from shared.session import Owner, SessionAgent, SessionHost, SessionSettings
from shared.session.owner import Side

GW = "gw1"
# Loopback round trips take milliseconds; this only bounds a broken test.
WAIT_S = 15.0
TTL_S = 2.0
SETTINGS = SessionSettings(ttl_s=TTL_S, heartbeat_s=0.2, turn_wait_s=5.0)


def settings(**changes: Any) -> SessionSettings:
    return dataclasses.replace(SETTINGS, **changes)


class Model(ScriptedBackend):
    """One side's model; `ScriptedBackend` echoes once its script runs out."""


def loader(side: Side, model: Model) -> Any:
    async def load(snapshot: SessionSnapshot) -> SessionAgent:
        return AgentSession.from_snapshot(snapshot, backend=model, side=side)

    return load


@dataclass
class Sides:
    edge_url: str
    cloud_url: str
    models: dict[str, Model] = field(default_factory=dict)
    hosts: list[SessionHost] = field(default_factory=list)
    conns: list[Client] = field(default_factory=list)
    services: list[Any] = field(default_factory=list)  # anything with `aclose()`

    async def connect(self, url: str) -> Client:
        nc = await nats.connect(url)
        self.conns.append(nc)
        return nc

    async def host(
        self, owner: Owner, *, settings: SessionSettings = SETTINGS, **kwargs: Any
    ) -> SessionHost:
        model = self.models.setdefault(owner.id, Model(name=f"{owner.side}-model"))
        nc = await self.connect(self.edge_url if owner.side == "edge" else self.cloud_url)
        gw = GW if owner.side == "edge" else ""
        host = SessionHost(nc, owner, loader(owner.side, model), gw=gw, settings=settings, **kwargs)
        self.hosts.append(await host.__aenter__())
        return host

    async def edge(self, **kwargs: Any) -> SessionHost:
        return await self.host(Owner("edge", GW), follow_after_handoff=True, **kwargs)

    async def cloud(self, name: str = "r1", **kwargs: Any) -> SessionHost:
        return await self.host(Owner("cloud", name), **kwargs)

    def model(self, owner: str) -> Model:
        return self.models[owner]

    async def close(self) -> None:
        for service in reversed(self.services):
            await service.aclose()
        for host in reversed(self.hosts):
            await host.aclose()
        for nc in self.conns:
            await nc.close()


async def start_session(
    edge: SessionHost, session: str = "s1", *, model: Model | None = None
) -> None:
    """Open `session` on `edge`, its agent on `model` (default: a fresh edge model)."""
    model = model or Model(name="edge-model")
    agent = AgentSession(session, gw=GW, backend=model, side="edge")
    await edge.open(agent, session, gw=GW)


async def turn(host: SessionHost, session: str, text: str) -> list[AgentEventBase]:
    """Every event of one turn, bounded by WAIT_S."""
    events: list[AgentEventBase] = []
    async with timeout(WAIT_S):
        async for event in host.ask(session, text):
            events.append(event)
    return events


async def first(events: AsyncIterator[AgentEventBase]) -> AgentEventBase:
    async with timeout(WAIT_S):
        return await events.__anext__()


async def running(host: SessionHost, session: str) -> None:
    """Until `host` owns and runs `session` (it may already)."""
    adopted = asyncio.Event()
    undo = host.on_runner(lambda runner: adopted.set() if runner.session == session else None)
    try:
        if session not in host.runners:
            async with timeout(WAIT_S):
                await adopted.wait()
    finally:
        undo()


def conversation(host: SessionHost, session: str) -> list[tuple[str, str]]:
    agent = host.runners[session].agent
    return [(m.role, m.content) for m in getattr(agent, "messages", [])]
