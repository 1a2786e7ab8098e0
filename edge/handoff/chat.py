"""`chat_handoff(nc, gateway)`: the hook `baton chat` (edge/agent/chat.py) looks for.

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

from collections.abc import AsyncIterator

from nats.aio.client import Client

from shared.agent import AgentSession
from shared.messages import AgentEventBase, SessionSnapshot
from shared.session import HandoffAborted, NotOwner, Owner, SessionAgent, SessionHost, Side


class ChatHandoff:
    def __init__(self, nc: Client, gateway: str) -> None:
        self._nc = nc
        self._gateway = gateway
        self._host: SessionHost | None = None
        self._sessions: dict[str, AgentSession] = {}

    async def move(self, session: AgentSession, to: Side) -> None:
        """Hand `session` over; raises `HandoffAborted` (a `BatonError`) when it did not move."""
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
