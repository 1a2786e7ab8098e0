"""What `baton chat` (edge/agent/chat.py) uses of the handoff protocol.

With the gateway's daemon hosting sessions (`edge.handoff.attach`), the chat is a client:

    session = await daemon_session(leaf_nc, "gw1", "s-1234")   # NotHosted: no daemon
    async for event in session.ask("why did the fan turn on?"): ...
    await session.move("cloud")          # the daemon hands it over; where() follows
    await session.aclose()               # the session stays with its owner

It asks `handoff.<gw>.open` (a new session, or the one named), then talks to the session
through a `SessionHost(serve=False)`: questions go to whoever owns it, handoffs are orders
to the owner, and the events come back over the owner's live stream (WebRTC, NATS as the
fallback). One process per gateway answers its sessions' inbox, never two.

Without a daemon the chat hosts the session itself (`chat_handoff`, as before):

    handoff = chat_handoff(leaf_nc, "gw1")
    await handoff.move(session, "cloud")        # session.owner, session.epoch follow
    async for event in handoff.ask_remote(session, "which devices need attention?"): ...
    await handoff.move(session, "edge")         # the same AgentSession, brought up to date
    await handoff.aclose()

The chat keeps one `AgentSession` and asks it directly while the gateway owns it. On the
first move the session comes under a `SessionHost` (its lease is created then). When it
comes back from the cloud, the snapshot is loaded *into that same object* (messages,
memory, tool state, pending questions, seq), so the chat goes on with it and sees every
turn the cloud answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

import nats.errors
from nats.aio.client import Client
from pydantic import ValidationError

from shared.agent import AgentSession
from shared.compat import timeout
from shared.errors import BatonError, DecodeError
from shared.messages import AgentEventBase, SessionSnapshot
from shared.session import (
    HandoffAborted,
    NotOwner,
    Owner,
    SessionAgent,
    SessionHost,
    SessionSettings,
    Side,
)
from shared.session.control import Open, OpenReply

# No daemon answers at once (no responders); one that does opens a session in a few hub
# round trips, or waits briefly for a session it is taking back after a restart. Past
# this the chat runs its session locally, but never answers for the gateway beside a
# daemon (`daemon_serves`): /handoff then says so.
OPEN_TIMEOUT_S: Final = 10.0
# After a move, until this process's lease board shows the new owner.
BOARD_WAIT_S: Final = 5.0


class NotHosted(BatonError):
    """No daemon hosts sessions for this gateway, or it did not open this one."""


class DaemonSession:
    """A session the gateway's daemon runs, seen from a client such as `baton chat`."""

    def __init__(self, host: SessionHost, reply: OpenReply) -> None:
        self.host = host
        self.id = reply.session
        self.model = reply.model
        self.notice = reply.notice
        self.movable = True
        self._owner = reply.owner or host.owner.id
        self._epoch = reply.epoch

    def where(self) -> tuple[Side, int]:
        """Who owns it (its side) and the epoch, from the lease as this process saw it."""
        lease = self.host.lease(self.id)
        if lease is not None and lease.epoch >= self._epoch:
            return lease.value.side, lease.epoch
        return Owner.parse(self._owner).side, self._epoch

    def ask(self, text: str) -> AsyncIterator[AgentEventBase]:
        return self.host.ask(self.id, text)

    async def move(self, to: Side) -> None:
        """Have the owner hand it over; `HandoffAborted` when it did not move."""
        report = await self.host.handoff(self.id, to, reason="chat")
        if not report.ok:
            raise HandoffAborted(self.id, report.step or "handoff", report.error)
        self._owner, self._epoch = report.owner or self._owner, report.epoch
        try:
            async with timeout(BOARD_WAIT_S):
                await self.host.board.wait(
                    self.id, lambda lease: lease is not None and lease.epoch >= report.epoch
                )
        except asyncio.TimeoutError:
            pass  # the status line shows the report's owner until the board catches up
        await self.host.unfollow(self.id)  # the next question follows the new owner

    async def aclose(self) -> None:
        """Stop following; the session stays with its owner."""
        await self.host.aclose()


async def daemon_session(
    nc: Client,
    gateway: str,
    session: str | None = None,
    *,
    settings: SessionSettings | None = None,
) -> DaemonSession:
    """The session `session` (None: a new one) in the gateway's daemon; `NotHosted` when
    no daemon answers, or it refused (the reason says why)."""
    owner = Owner("edge", gateway)
    try:
        request = Open(session=session)
    except ValidationError:
        raise NotHosted(f"{session!r} is not a session id") from None
    try:
        msg = await nc.request(owner.inbox("open"), request.encode(), timeout=OPEN_TIMEOUT_S)
        reply = OpenReply.decode(msg.data)
    except nats.errors.NoRespondersError:
        raise NotHosted("no edge daemon hosts sessions here") from None
    except (nats.errors.Error, DecodeError) as exc:
        raise NotHosted(f"the edge daemon did not answer: {exc!r}") from exc
    if not reply.ok:
        raise NotHosted(f"the edge daemon did not open it: {reply.reason}")
    host = SessionHost(nc, owner, _no_loader, gw=gateway, settings=settings, serve=False)
    try:
        await host.__aenter__()
    except (BatonError, asyncio.TimeoutError) as exc:
        raise NotHosted(f"the hub's leases are not readable: {exc!r}") from exc
    return DaemonSession(host, reply)


async def daemon_serves(nc: Client, gateway: str) -> bool:
    """Whether a daemon answers `handoff.<gw>.open` (asked with an empty request, which
    it refuses without opening anything). Only one process may own a gateway's inbox."""
    try:
        await nc.request(Owner("edge", gateway).inbox("open"), b"", timeout=OPEN_TIMEOUT_S)
    except nats.errors.NoRespondersError:
        return False
    except nats.errors.Error:
        return True  # it is there, and slow
    return True


async def _no_loader(snapshot: SessionSnapshot) -> SessionAgent:
    raise NotOwner(snapshot.session, None)  # a client never loads a session


class ChatHandoff:
    def __init__(self, nc: Client, gateway: str) -> None:
        self._nc = nc
        self._gateway = gateway
        self._host: SessionHost | None = None
        self._sessions: dict[str, AgentSession] = {}

    async def move(self, session: AgentSession, to: Side) -> None:
        """Hand `session` over; raises `HandoffAborted` (a `BatonError`) when it did not move."""
        if self._host is None and await daemon_serves(self._nc, self._gateway):
            raise HandoffAborted(
                session.id, "request", "the edge daemon hosts this gateway's sessions now "
                "(one process answers for them): leave and start baton chat again",
            )  # fmt: skip
        host = await self._started()
        self._sessions[session.id] = session
        if session.id not in host.runners and host.lease(session.id) is None:
            await host.open(session, session.id, gw=self._gateway)
        report = await host.handoff(session.id, to, reason="chat")
        if not report.ok:
            raise HandoffAborted(session.id, report.step or "handoff", report.error)
        if report.epoch > session.epoch:
            session.fence(report.epoch, to)

    def ask_remote(self, session: AgentSession, text: str) -> AsyncIterator[AgentEventBase]:
        if self._host is None:
            raise NotOwner(session.id, None)
        return self._host.ask(session.id, text)

    async def aclose(self) -> None:
        host, self._host = self._host, None
        if host is not None:
            await host.aclose()

    async def _started(self) -> SessionHost:
        if self._host is None:
            owner = Owner("edge", self._gateway)
            host = SessionHost(self._nc, owner, self._load, gw=self._gateway,
                               follow_after_handoff=True)  # fmt: skip
            self._host = await host.__aenter__()
        return self._host

    async def _load(self, snapshot: SessionSnapshot) -> SessionAgent:
        session = self._sessions.get(snapshot.session)
        if session is None:  # a session this chat never held: no model of its own here
            raise NotOwner(snapshot.session, None)
        session.restore(snapshot.messages, snapshot.last_seq)
        session.memory = dict(snapshot.memory)
        session.tool_state = dict(snapshot.tool_state)
        session.pending = [dict(task) for task in snapshot.pending]
        session.cursors = dict(snapshot.cursors)
        session.owner = "edge"
        return session


def chat_handoff(nc: Client, gateway: str) -> ChatHandoff:
    return ChatHandoff(nc, gateway)
