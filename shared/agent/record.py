"""Where a session's events and checkpoints go: the owner's store and the audit stream.

    SessionRecorder.record(event)         every event, in seq order, before it is yielded
    SessionRecorder.checkpoint(snapshot)  after each turn (and before a handoff)

`MemoryRecorder` is the in-memory twin; the edge's is `edge.agent.store.SessionStore`
behind an `AuditStream`, the cloud's its own.
"""

from __future__ import annotations

from typing import Protocol

from shared.messages import AgentEventBase, SessionSnapshot


class SessionRecorder(Protocol):
    async def record(self, event: AgentEventBase) -> None: ...

    async def checkpoint(self, snapshot: SessionSnapshot) -> None: ...


class MemoryRecorder:
    def __init__(self) -> None:
        self.events: list[AgentEventBase] = []
        self.snapshots: list[SessionSnapshot] = []

    async def record(self, event: AgentEventBase) -> None:
        self.events.append(event)

    async def checkpoint(self, snapshot: SessionSnapshot) -> None:
        self.snapshots.append(snapshot)


class Recorders:
    """Several recorders as one, called in order (e.g. the store, then the audit stream)."""

    def __init__(self, *recorders: SessionRecorder) -> None:
        self._recorders = recorders

    async def record(self, event: AgentEventBase) -> None:
        for recorder in self._recorders:
            await recorder.record(event)

    async def checkpoint(self, snapshot: SessionSnapshot) -> None:
        for recorder in self._recorders:
            await recorder.checkpoint(snapshot)
