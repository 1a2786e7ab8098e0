"""The agent event stream: what a running agent emits, in order, per session.

Every event carries the session, a per-session `seq` (consumers resume from the last one
they acknowledged, so a stream that switches from WebRTC to NATS has no gap or repeat)
and the `epoch` of the owner that produced it.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, JsonValue

from shared.messages.base import Count, Message, Millis, SessionId, now_ms

Side = Literal["edge", "cloud"]


class AgentEventBase(Message):
    kind: ClassVar[str] = "agent_event"
    session: SessionId
    seq: Count
    epoch: Count = 0
    agent: str = Field(default="", max_length=64)
    ts_ms: Millis = Field(default_factory=now_ms)


class AgentStart(AgentEventBase):
    type: Literal["agent_start"] = "agent_start"
    model: str | None = None


class AgentSwitch(AgentEventBase):
    type: Literal["agent_switch"] = "agent_switch"
    from_agent: str
    to_agent: str
    reason: str = ""


class ContentChunk(AgentEventBase):
    type: Literal["content_chunk"] = "content_chunk"
    text: str


class ToolExecution(AgentEventBase):
    type: Literal["tool_execution"] = "tool_execution"
    call_id: str
    tool: str
    args: dict[str, JsonValue] = Field(default_factory=dict)


class ToolResult(AgentEventBase):
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    tool: str
    ok: bool = True
    result: JsonValue = None


class AgentComplete(AgentEventBase):
    type: Literal["agent_complete"] = "agent_complete"
    text: str = ""
    tokens: Count = 0


class AgentError(AgentEventBase):
    type: Literal["error"] = "error"
    code: str
    message: str
    retryable: bool = False


class HandoffRequest(AgentEventBase):
    type: Literal["handoff_request"] = "handoff_request"
    to: Side
    reason: str = ""


class HandoffSnapshot(AgentEventBase):
    type: Literal["handoff_snapshot"] = "handoff_snapshot"
    size: Count
    # Inline for small snapshots; the Object Store name for large ones.
    object_name: str | None = None


class HandoffAccept(AgentEventBase):
    type: Literal["handoff_accept"] = "handoff_accept"
    owner: Side


class HandoffComplete(AgentEventBase):
    type: Literal["handoff_complete"] = "handoff_complete"
    owner: Side
    latency_ms: float = 0.0


class HandoffAbort(AgentEventBase):
    type: Literal["handoff_abort"] = "handoff_abort"
    reason: str


AgentEvent = Annotated[
    AgentStart
    | AgentSwitch
    | ContentChunk
    | ToolExecution
    | ToolResult
    | AgentComplete
    | AgentError
    | HandoffRequest
    | HandoffSnapshot
    | HandoffAccept
    | HandoffComplete
    | HandoffAbort,
    Field(discriminator="type"),
]

AGENT_EVENT_TYPES: tuple[type[AgentEventBase], ...] = (
    AgentStart,
    AgentSwitch,
    ContentChunk,
    ToolExecution,
    ToolResult,
    AgentComplete,
    AgentError,
    HandoffRequest,
    HandoffSnapshot,
    HandoffAccept,
    HandoffComplete,
    HandoffAbort,
)
