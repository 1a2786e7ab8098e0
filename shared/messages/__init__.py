"""Versioned wire messages shared by edge, cloud and firmware-sim."""

from shared.messages.agent import (
    AGENT_EVENT_TYPES,
    AgentComplete,
    AgentError,
    AgentEvent,
    AgentEventBase,
    AgentStart,
    AgentSwitch,
    ContentChunk,
    HandoffAbort,
    HandoffAccept,
    HandoffComplete,
    HandoffRequest,
    HandoffSnapshot,
    ToolExecution,
    ToolResult,
)
from shared.messages.base import SCHEMA_VERSION, SUPPORTED_VERSIONS, Message, new_id, now_ms
from shared.messages.plan import Compensation, Plan, PlanStep
from shared.messages.session import ChatMessage, SessionSnapshot
from shared.messages.telemetry import Command, CommandAck, Decision, GatewayEvent, Reading
from shared.messages.twin import DesiredState, ReportedState, TwinState
from shared.messages.updates import ModelUpdate, RulesUpdate, rules_digest

# Top-level message classes by their `kind` (agent events share one kind, split by `type`).
MESSAGE_TYPES: tuple[type[Message], ...] = (
    Reading,
    Command,
    CommandAck,
    Decision,
    GatewayEvent,
    DesiredState,
    ReportedState,
    TwinState,
    SessionSnapshot,
    Plan,
    RulesUpdate,
    ModelUpdate,
)

__all__ = [
    "AGENT_EVENT_TYPES",
    "MESSAGE_TYPES",
    "SCHEMA_VERSION",
    "SUPPORTED_VERSIONS",
    "AgentComplete",
    "AgentError",
    "AgentEvent",
    "AgentEventBase",
    "AgentStart",
    "AgentSwitch",
    "ChatMessage",
    "Command",
    "CommandAck",
    "Compensation",
    "ContentChunk",
    "Decision",
    "DesiredState",
    "GatewayEvent",
    "HandoffAbort",
    "HandoffAccept",
    "HandoffComplete",
    "HandoffRequest",
    "HandoffSnapshot",
    "Message",
    "ModelUpdate",
    "Plan",
    "PlanStep",
    "Reading",
    "ReportedState",
    "RulesUpdate",
    "SessionSnapshot",
    "ToolExecution",
    "ToolResult",
    "TwinState",
    "new_id",
    "now_ms",
    "rules_digest",
]
