"""`SessionManager`: one cloud replica's side of session handoff, for the orchestrator and API.

    async with SessionManager(hub_nc, "r1", backend=cloud_backend) as sessions:
        sessions.sessions()                        # every session: owner, side, epoch
        await sessions.request_handoff("s1", "edge")
        answer = await sessions.rtc_answer("s1", offer_sdp)   # a dashboard's WebRTC
        async for event in sessions.events("s1", after=0): ... # or follow over NATS

It takes sessions the edge hands over (`cloud.session.prepare`, a queue group: the
replica that answers first holds the lease), continues them with the cloud's (larger)
model, streams them to the edge and to browsers over WebRTC, and hands them back. A
session it handed back it takes again by CAS if the gateway's lease runs out.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import nats.errors
from nats.aio.client import Client

from shared import subjects
from shared.agent import AgentConfig, AgentSession, InferenceBackend, RuleBackend, ToolBox
from shared.errors import TransportError
from shared.messages import AgentEventBase, SessionSnapshot
from shared.session import (
    AgentLoader,
    EventFeed,
    HandoffReport,
    Lease,
    Mark,
    NotOwner,
    Owner,
    SessionAgent,
    SessionHost,
    SessionSettings,
    Side,
    rtc,
)
from shared.session.runner import hub_js

SIGNAL_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What the API lists for one session."""

    session: str
    gw: str
    owner: str
    side: str
    epoch: int
    prev: str | None
    last_seq: int

    @classmethod
    def of(cls, lease: Lease) -> SessionInfo:
        v = lease.value
        return cls(lease.session, v.gw, v.owner, v.side, lease.epoch, v.prev, v.last_seq)


def cloud_loader(
    backend: InferenceBackend, *, tools: ToolBox | None = None, config: AgentConfig | None = None
) -> AgentLoader:
    async def load(snapshot: SessionSnapshot) -> SessionAgent:
        return AgentSession.from_snapshot(
            snapshot, backend=backend, tools=tools, side="cloud", config=config
        )

    return load


class SessionManager:
    """An async context manager; `aclose()` drains the sessions this replica runs."""

    def __init__(
        self,
        nc: Client,
        replica: str,
        *,
        backend: InferenceBackend | None = None,
        loader: AgentLoader | None = None,
        settings: SessionSettings | None = None,
    ) -> None:
        self.replica = replica
        load = loader or cloud_loader(backend or RuleBackend())
        self.host = SessionHost(nc, Owner("cloud", replica), load, settings=settings)

    async def __aenter__(self) -> SessionManager:
        await self.host.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.host.aclose()

    def sessions(self) -> list[SessionInfo]:
        """Every session on the hub, as this replica's lease board last saw it."""
        return [SessionInfo.of(lease) for lease in self.host.sessions()]

    def session(self, session: str) -> SessionInfo | None:
        lease = self.host.lease(session)
        return SessionInfo.of(lease) if lease else None

    async def request_handoff(
        self, session: str, to: Side, *, reason: str = "api"
    ) -> HandoffReport:
        """Move `session`; here if this replica owns it, else through its owner. The
        report says whether it moved (`ok`, `step`, `error`), its new owner and epoch."""
        return await self.host.handoff(session, to, reason=reason)

    def ask(self, session: str, text: str) -> AsyncIterator[AgentEventBase]:
        return self.host.ask(session, text)

    async def rtc_answer(self, session: str, sdp: str, *, after: int = 0) -> str:
        """A browser's SDP offer for the live stream of `session`: the answer SDP. The
        channel carries JSON frames (`shared.session.frames`). Raises `NotOwner` when no
        replica owns it, `TransportError` when its owner does not answer."""
        offer = rtc.Offer(sdp, after, "json")
        runner = self.host.runners.get(session)
        if runner is not None and runner.acting():
            return await runner.serve_offer(offer)
        lease = self.host.lease(session)
        if lease is None:
            raise NotOwner(session, None)
        subject = subjects.rtc_signal(session, lease.value.side)
        try:
            msg = await self.host.nc.request(subject, offer.encode(), timeout=SIGNAL_TIMEOUT_S)
        except nats.errors.Error as exc:
            raise TransportError(f"the owner of {session} did not answer: {exc!r}") from exc
        reply = json.loads(msg.data)
        if reply.get("type") != "answer":
            raise NotOwner(session, lease.value.owner)
        return str(reply["sdp"])

    async def events(self, session: str, *, after: int = 0) -> AsyncIterator[AgentEventBase]:
        """The session's events after `after`, then live, from the NATS log (the
        dashboard's fallback when it has no WebRTC): for SSE."""
        lease = self.host.lease(session)
        epoch = lease.epoch if lease and after else 0
        feed = EventFeed(self.host.nc, hub_js(self.host.nc), session, after=after,
                         epoch=epoch, mark=Mark(), use_rtc=False)  # fmt: skip
        async with feed:
            async for event in feed:
                yield event
