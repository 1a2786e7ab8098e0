"""The agent engine the edge and the cloud both run (`edge` and `cloud` never import
each other; what they share lives here).

    AgentSession          a conversation: ask() -> events, to_snapshot()/from_snapshot()
    InferenceBackend      the model seam: LlamaBackend (llama.cpp), RuleBackend (no model)
    Tool, ToolBox         JSON-schema tools over plain async callables
    AuditStream           every event to the owner's outbox, then to `session.<id>.ev`
    open_backend          the backend a config asks for, or RuleBackend saying why not
"""

from shared.agent.audit import AuditStream, MemoryOutbox, Outbox, OutboxEntry
from shared.agent.backend import InferenceBackend, TextDelta, ToolCall, ToolSpec
from shared.agent.config import AgentConfig
from shared.agent.errors import AgentFailure, BackendError, ContextFull, ToolError
from shared.agent.factory import open_backend
from shared.agent.llama import LlamaBackend
from shared.agent.record import MemoryRecorder, Recorders, SessionRecorder
from shared.agent.rules import NO_MODEL, RuleBackend
from shared.agent.session import AgentSession
from shared.agent.tools import Tool, ToolBox, ToolContext, ToolOutcome

__all__ = [
    "NO_MODEL",
    "AgentConfig",
    "AgentFailure",
    "AgentSession",
    "AuditStream",
    "BackendError",
    "ContextFull",
    "InferenceBackend",
    "LlamaBackend",
    "MemoryOutbox",
    "MemoryRecorder",
    "Outbox",
    "OutboxEntry",
    "Recorders",
    "RuleBackend",
    "SessionRecorder",
    "TextDelta",
    "Tool",
    "ToolBox",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "ToolSpec",
    "open_backend",
]
