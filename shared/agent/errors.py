"""The agent engine's errors, rooted under `shared.errors.BatonError`.

AgentFailure
├── BackendError     the model could not be loaded or failed mid-reply
├── ToolError        a tool refused its arguments or failed (`.retryable` says if asking
│                    again can help)
└── ContextFull      the question alone does not fit the model's context window
"""

from __future__ import annotations

from pydantic import JsonValue

from shared.errors import BatonError


class AgentFailure(BatonError):
    """Root of the agent engine's errors; `code` is the `error` event's code."""

    code = "agent"


class BackendError(AgentFailure):
    code = "backend"


class ToolError(AgentFailure):
    """`details` join the `tool_result`'s result (e.g. the guard's refusal reason)."""

    code = "tool"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        details: dict[str, JsonValue] | None = None,
    ) -> None:
        self.retryable = retryable
        self.details = details or {}
        super().__init__(message)


class ContextFull(AgentFailure):
    code = "context_full"
    retryable = True
