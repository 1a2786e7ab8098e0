"""`LocalAgent`: the gateway's agent, assembled: backend, tools, session store, audit.

    async with await LocalAgent.open(edge_config, agent_config, nc=leaf) as agent:
        session = await agent.session()              # new, or agent.session("s-id") resumes
        async for event in session.ask("why did the fan turn on?"): ...

`nc` is the connection to the gateway's leaf: it carries the live reading tap, the
commands (`LocalActuation`) and the audit publishes to the hub. Without it the agent
still answers from SQLite, keeps every event locally, and says actuation is unavailable.
Inside the daemon, pass `state=EdgeState.of_daemon(daemon)` and `store=daemon.store`.
"""

from __future__ import annotations

import contextlib
import uuid

from nats.aio.client import Client

from edge.agent.actuation import LocalActuation
from edge.agent.readings import ReadingTap, RecentReadings
from edge.agent.state import EdgeState
from edge.agent.store import SessionStore
from edge.agent.tools import edge_tools
from edge.config import EdgeConfig
from edge.ingest.nats_source import NatsCommandSink
from edge.store import AsyncStore
from shared.agent import (
    AgentConfig,
    AgentSession,
    AuditStream,
    InferenceBackend,
    SessionRecorder,
    open_backend,
)
from shared.lifecycle import Service


class LocalAgent(Service):
    def __init__(
        self,
        state: EdgeState,
        sessions: SessionStore,
        audit: AuditStream,
        backend: InferenceBackend,
        config: AgentConfig,
        stack: contextlib.AsyncExitStack,
    ) -> None:
        self.state = state
        self.sessions = sessions
        self.audit = audit
        self.backend = backend
        self.config = config
        self.tools = edge_tools(state)
        self._stack = stack

    @classmethod
    async def open(
        cls,
        edge: EdgeConfig,
        config: AgentConfig,
        *,
        nc: Client | None = None,
        store: AsyncStore | None = None,
        state: EdgeState | None = None,
        backend: InferenceBackend | None = None,
    ) -> LocalAgent:
        """Open what is not given; on failure close what was opened."""
        stack = contextlib.AsyncExitStack()
        try:
            if store is None:
                store = await AsyncStore.open(
                    edge.state_dir, max_quarantine=edge.store.quarantine_max_rows,
                    max_decisions=edge.store.decisions_max_rows,
                )  # fmt: skip
                stack.push_async_callback(store.aclose)
            if state is None:
                state = await _standalone_state(edge, store, nc, stack)
            sessions = await SessionStore.open(store)
            audit = AuditStream(sessions, nc)
            await audit.start()
            stack.push_async_callback(audit.aclose)
            if backend is None:
                backend = await open_backend(config)
                stack.push_async_callback(backend.aclose)
        except BaseException:
            await stack.aclose()
            raise
        return cls(state, sessions, audit, backend, config, stack)

    async def session(self, session_id: str | None = None, *, hosted: bool = False) -> AgentSession:
        """A new session, or the stored one with this id (continued where it stopped).

        `hosted`: a `SessionRunner` will run it (the daemon's `SessionHost`), which appends
        its events to the hub itself; they are only kept here (`SessionStore.kept`)."""
        sid = session_id or new_session_id()
        snapshot = await self.sessions.load(sid) if session_id else None
        recorder: SessionRecorder = self.sessions.kept() if hosted else self.audit
        if snapshot is not None:
            return AgentSession.from_snapshot(
                snapshot, backend=self.backend, tools=self.tools, side="edge",
                config=self.config, recorder=recorder,
            )  # fmt: skip
        return AgentSession(
            sid, gw=self.state.gateway, backend=self.backend, tools=self.tools, side="edge",
            config=self.config, recorder=recorder,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Drain the audit stream (bounded), close the model, the store. Safe twice."""
        await self._stack.aclose()


def new_session_id() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


async def _standalone_state(
    edge: EdgeConfig, store: AsyncStore, nc: Client | None, stack: contextlib.AsyncExitStack
) -> EdgeState:
    readings = RecentReadings()
    execute = None
    if nc is not None:
        tap = ReadingTap(nc, readings)
        await tap.start()
        stack.push_async_callback(tap.aclose)
        execute = LocalActuation(edge, store, NatsCommandSink(nc)).execute
    return EdgeState(
        edge.gateway, store, rules=lambda: edge.rules, models=lambda: edge.models,
        execute=execute, readings=readings,
    )  # fmt: skip
