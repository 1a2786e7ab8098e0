"""The agent engine the edge and the cloud both run (`edge` and `cloud` never import
each other; what they share lives here).

    AgentSession          a conversation: ask() -> events, to_snapshot()/from_snapshot()
    InferenceBackend      the model seam: LlamaBackend (llama.cpp), RuleBackend (no model)
    Tool, ToolBox         JSON-schema tools over plain async callables
    AuditStream           every event to the owner's outbox, then to `session.<id>.ev`
    open_backend          the backend a config asks for, or RuleBackend saying why not
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_getattr

if TYPE_CHECKING:
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

# Loaded on first use (PEP 562): the edge daemon reads `shared.agent.config` at start-up
# and must not pay for the engine, llama.cpp glue or NATS audit until a session opens.
_EXPORTS = {
    "AgentConfig": "shared.agent.config",
    "AgentFailure": "shared.agent.errors",
    "AgentSession": "shared.agent.session",
    "AuditStream": "shared.agent.audit",
    "BackendError": "shared.agent.errors",
    "ContextFull": "shared.agent.errors",
    "InferenceBackend": "shared.agent.backend",
    "LlamaBackend": "shared.agent.llama",
    "MemoryOutbox": "shared.agent.audit",
    "MemoryRecorder": "shared.agent.record",
    "NO_MODEL": "shared.agent.rules",
    "Outbox": "shared.agent.audit",
    "OutboxEntry": "shared.agent.audit",
    "Recorders": "shared.agent.record",
    "RuleBackend": "shared.agent.rules",
    "SessionRecorder": "shared.agent.record",
    "TextDelta": "shared.agent.backend",
    "Tool": "shared.agent.tools",
    "ToolBox": "shared.agent.tools",
    "ToolCall": "shared.agent.backend",
    "ToolContext": "shared.agent.tools",
    "ToolError": "shared.agent.errors",
    "ToolOutcome": "shared.agent.tools",
    "ToolSpec": "shared.agent.backend",
    "open_backend": "shared.agent.factory",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


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
