"""`edge_loader`: a snapshot becomes an `AgentSession` with the gateway's own model and tools.

    loader = edge_loader(local_agent.backend, tools=local_agent.tools,
                         config=local_agent.config, recorder=store_only)

`recorder` keeps the session's events and checkpoints on the gateway; it must not feed
`shared.agent.AuditStream` (the runner appends the session's events to the hub itself,
by compare-and-set, and a second publisher on `session.<id>.ev` only costs the runner a
re-read per foreign append and the log a duplicate per event).
"""

from __future__ import annotations

from shared.agent import AgentConfig, AgentSession, InferenceBackend, SessionRecorder, ToolBox
from shared.messages import SessionSnapshot
from shared.session import AgentLoader, SessionAgent


def edge_loader(
    backend: InferenceBackend,
    *,
    tools: ToolBox | None = None,
    config: AgentConfig | None = None,
    recorder: SessionRecorder | None = None,
) -> AgentLoader:
    async def load(snapshot: SessionSnapshot) -> SessionAgent:
        return AgentSession.from_snapshot(
            snapshot, backend=backend, tools=tools, side="edge", config=config,
            recorder=recorder,
        )  # fmt: skip

    return load
