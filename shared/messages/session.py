"""A session snapshot: everything a new owner needs to continue an agent conversation."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, JsonValue

from shared.messages.base import (
    BUILT_ON_FIRST_USE,
    Count,
    GatewayId,
    Message,
    Millis,
    Part,
    SessionId,
    now_ms,
)


class ChatMessage(Part):
    model_config = BUILT_ON_FIRST_USE
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = None
    ts_ms: Millis = Field(default_factory=now_ms)


class SessionSnapshot(Message):
    model_config = BUILT_ON_FIRST_USE
    kind: ClassVar[str] = "session_snapshot"
    session: SessionId
    gw: GatewayId
    epoch: Count
    owner: Literal["edge", "cloud"]
    messages: list[ChatMessage] = Field(default_factory=list)
    memory: dict[str, JsonValue] = Field(default_factory=dict)
    tool_state: dict[str, JsonValue] = Field(default_factory=dict)
    pending: list[dict[str, JsonValue]] = Field(default_factory=list)
    # Stream positions the new owner resumes from, e.g. {"events": 41}.
    cursors: dict[str, Count] = Field(default_factory=dict)
    last_seq: Count = 0
    created_ms: Millis = Field(default_factory=now_ms)
