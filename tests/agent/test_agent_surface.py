"""The agent packages' public surface, and what importing them costs."""

from __future__ import annotations

import subprocess
import sys

import edge.agent
import shared.agent


def test_shared_agent_public_names() -> None:
    assert sorted(shared.agent.__all__) == sorted([
        "NO_MODEL", "AgentConfig", "AgentFailure", "AgentSession", "AuditStream",
        "BackendError", "ContextFull", "InferenceBackend", "LlamaBackend", "MemoryOutbox",
        "MemoryRecorder", "Outbox", "OutboxEntry", "Recorders", "RuleBackend",
        "SessionRecorder", "TextDelta", "Tool", "ToolBox", "ToolCall", "ToolContext",
        "ToolError", "ToolOutcome", "ToolSpec", "open_backend",
    ])  # fmt: skip


def test_edge_agent_public_names() -> None:
    assert sorted(edge.agent.__all__) == sorted([
        "EdgeState", "LocalActuation", "LocalAgent", "ReadingTap", "RecentReadings",
        "SessionStore", "edge_tools",
    ])  # fmt: skip


def test_importing_the_agent_loads_no_model_runtime() -> None:
    code = (
        "import sys, edge.agent, edge.agent.cli, shared.agent;"
        "print(sorted(m for m in ('llama_cpp', 'gguf', 'numpy', 'jinja2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
