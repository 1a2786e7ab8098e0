"""`AgentSession`: one conversation with its working memory, tool state, pending tasks and
cursors, the per-session event sequence, and the epoch its side effects carry.

    session = AgentSession("s1", gw="gw1", backend=backend, tools=toolbox, epoch=3)
    async for event in session.ask("why did the fan turn on?"):
        ...                                   # agent_start, content_chunk, ..., agent_complete
    snap = session.to_snapshot(epoch, owner, gw)        # hand it off
    same = AgentSession.from_snapshot(snap, backend=..., tools=...)

Every event gets the next `seq` (consecutive, never reused: a snapshot carries
`last_seq`) and is recorded before it is yielded. A question stays in `pending` until its
turn completes (or the next question supersedes it), so an owner that takes over
mid-turn, or the cloud after a context too big for the edge, answers it with `resume()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

from pydantic import JsonValue

from shared.agent.backend import InferenceBackend
from shared.agent.config import AgentConfig
from shared.agent.record import SessionRecorder
from shared.agent.tools import ToolBox, ToolContext
from shared.agent.turn import Turn, superseded
from shared.messages import AgentEventBase, ChatMessage, SessionSnapshot
from shared.messages.agent import Side

E = TypeVar("E", bound=AgentEventBase)

AGENT_NAME_MAX = 64


class AgentSession:
    def __init__(
        self,
        session_id: str,
        *,
        gw: str,
        backend: InferenceBackend,
        tools: ToolBox | None = None,
        side: Side = "edge",
        epoch: int = 0,
        config: AgentConfig | None = None,
        recorder: SessionRecorder | None = None,
    ) -> None:
        self.id = session_id
        self.gw = gw
        self.side = side
        self.owner: Side = side
        self.backend = backend
        self.tools = tools or ToolBox()
        self.config = config or AgentConfig()
        self.recorder = recorder
        self.messages: list[ChatMessage] = []
        self.memory: dict[str, JsonValue] = {}
        self.tool_state: dict[str, JsonValue] = {}
        self.pending: list[dict[str, JsonValue]] = []
        self.cursors: dict[str, int] = {}
        self._epoch = epoch
        self._seq = 0
        self._lock = asyncio.Lock()

    # -- identity, fencing, sequence --------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def seq(self) -> int:
        """The last seq given to an event (0 before the first)."""
        return self._seq

    @property
    def agent(self) -> str:
        return f"{self.side}:{self.backend.name}"[:AGENT_NAME_MAX]

    def fence(self, epoch: int, owner: Side | None = None) -> None:
        """Take a new lease epoch (and owner); a lower epoch than held is a bug upstream."""
        if epoch < self._epoch:
            raise ValueError(f"session {self.id}: epoch {epoch} < held {self._epoch}")
        self._epoch = epoch
        if owner is not None:
            self.owner = owner

    def event(self, cls: type[E], **fields: Any) -> E:
        """A new event of this session with the next seq, this epoch and agent."""
        self._seq += 1
        return cls(session=self.id, seq=self._seq, epoch=self._epoch, agent=self.agent, **fields)

    async def emit(self, cls: type[E], **fields: Any) -> E:
        """`event()`, recorded (store, audit stream) before the caller sees it."""
        event = self.event(cls, **fields)
        if self.recorder is not None:
            await self.recorder.record(event)
        self.cursors["events"] = event.seq
        return event

    def context(self) -> ToolContext:
        return ToolContext(self.id, self._epoch, self.gw, self.memory, self.tool_state)

    # -- turns -------------------------------------------------------------------------

    async def ask(self, text: str) -> AsyncGenerator[AgentEventBase, None]:
        """Run one turn for `text`, yielding its events in seq order."""
        async with self._lock:
            turn = Turn.start(self, text)
            async with aclosing(turn.run()) as events:
                async for event in events:
                    yield event

    async def resume(self) -> AsyncGenerator[AgentEventBase, None]:
        """Answer the question an earlier owner left pending (after a handoff)."""
        async with self._lock:
            while self.pending:
                if superseded(self.messages, self.pending[0]):
                    # Later questions were answered after it (a snapshot from before
                    # `Turn.start` superseded pending questions): restarting it would
                    # drop those exchanges, answering it now would put it out of order.
                    self.pending.pop(0)
                    continue
                turn = Turn.restart(self, self.pending[0])
                async with aclosing(turn.run()) as events:
                    async for event in events:
                        yield event
                if self.pending and self.pending[0] is turn.task:
                    break  # it failed again: leave it for the next owner or a retry

    async def checkpoint(self) -> SessionSnapshot:
        snapshot = self.to_snapshot()
        if self.recorder is not None:
            await self.recorder.checkpoint(snapshot)
        return snapshot

    # -- snapshots ---------------------------------------------------------------------

    def to_snapshot(
        self, epoch: int | None = None, owner: Side | None = None, gw: str | None = None
    ) -> SessionSnapshot:
        """Everything a new owner needs (defaults: this session's epoch, owner, gateway)."""
        return SessionSnapshot(
            session=self.id,
            gw=gw or self.gw,
            epoch=self._epoch if epoch is None else epoch,
            owner=owner or self.owner,
            messages=list(self.messages),
            memory=dict(self.memory),
            tool_state=dict(self.tool_state),
            pending=[dict(task) for task in self.pending],
            cursors=dict(self.cursors),
            last_seq=self._seq,
        )

    @classmethod
    def from_snapshot(
        cls,
        snapshot: SessionSnapshot,
        *,
        backend: InferenceBackend,
        tools: ToolBox | None = None,
        side: Side | None = None,
        config: AgentConfig | None = None,
        recorder: SessionRecorder | None = None,
    ) -> AgentSession:
        """Continue a session where the snapshot left it: the next event is `last_seq + 1`."""
        session = cls(
            snapshot.session, gw=snapshot.gw, backend=backend, tools=tools,
            side=side or snapshot.owner, epoch=snapshot.epoch, config=config, recorder=recorder,
        )  # fmt: skip
        session.owner = snapshot.owner
        session.restore(snapshot.messages, snapshot.last_seq)
        session.memory = dict(snapshot.memory)
        session.tool_state = dict(snapshot.tool_state)
        session.pending = [dict(task) for task in snapshot.pending]
        session.cursors = dict(snapshot.cursors)
        return session

    def restore(self, messages: Sequence[ChatMessage], last_seq: int) -> None:
        self.messages = list(messages)
        self._seq = last_seq
