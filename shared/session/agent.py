"""The agent seam: what the handoff protocol needs from a conversation engine.

`shared.agent.AgentSession` satisfies `SessionAgent`; `AgentLoader` is how a side turns
a snapshot into a running session (with its own backend and tools: the cloud's larger
model, the edge's local one):

    async def load(snapshot: SessionSnapshot) -> SessionAgent:
        return AgentSession.from_snapshot(snapshot, backend=backend, tools=tools,
                                          side="cloud", recorder=store)

The loader's session must not publish to `session.<id>.ev` itself (no `AuditStream` in
its recorder): the `SessionRunner` appends its events to the hub by compare-and-set,
which is what fences a zombie owner out of the log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from pydantic import JsonValue

from shared.messages import AgentEventBase, SessionSnapshot
from shared.session.owner import Side

E = TypeVar("E", bound=AgentEventBase)


class SessionAgent(Protocol):
    pending: list[dict[str, JsonValue]]

    @property
    def seq(self) -> int:
        """The last seq given to an event."""
        ...

    def fence(self, epoch: int, owner: Side | None = None) -> None:
        """Carry `epoch` on every event and side effect from now on."""
        ...

    async def emit(self, cls: type[E], **fields: Any) -> E:
        """A new event with the next seq (recorded by the engine's own recorder)."""
        ...

    def ask(self, text: str) -> AsyncIterator[AgentEventBase]: ...

    def resume(self) -> AsyncIterator[AgentEventBase]:
        """Answer the questions a previous owner left pending."""
        ...

    def to_snapshot(
        self, epoch: int | None = None, owner: Side | None = None, gw: str | None = None
    ) -> SessionSnapshot: ...


AgentLoader = Callable[[SessionSnapshot], Awaitable[SessionAgent]]
