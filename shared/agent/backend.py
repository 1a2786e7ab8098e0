"""The inference seam: what a model (or the rule engine standing in for one) yields.

    InferenceBackend.stream(messages, tools, max_tokens)
        -> AsyncGenerator[TextDelta | ToolCall, None]   (an async generator: aclose() stops it)
    InferenceBackend.count_tokens(text) -> int     the context budget's measure
    InferenceBackend.aclose()                       safe twice

`LlamaBackend` (llama.cpp) and `RuleBackend` (intent matching over the tools, no model)
are the two real ones; tests add scripted ones that satisfy the same Protocol.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import JsonValue

from shared.messages import ChatMessage


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Generated text; `tokens` is how many model tokens it stands for."""

    text: str
    tokens: int = 1


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool; the session runs it and continues the turn."""

    name: str
    arguments: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as a model sees it: name, what it does, JSON-schema parameters."""

    name: str
    description: str
    parameters: Mapping[str, JsonValue]


Output = TextDelta | ToolCall


class InferenceBackend(Protocol):
    @property
    def name(self) -> str:
        """What `agent_start.model` reports: the model file's name, or "rules"."""
        ...

    @property
    def n_ctx(self) -> int:
        """The context window in tokens (prompt plus reply)."""
        ...

    @property
    def notice(self) -> str | None:
        """A line the user must read once per session (e.g. "no model configured")."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncGenerator[Output, None]:
        """Generate a reply to `messages`; ends after text, or after one `ToolCall`."""
        ...

    async def aclose(self) -> None: ...


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate for backends without one: ~3.5 characters per token is
    what llama/BPE vocabularies give on English and JSON; overestimating is the safe side."""
    return (len(text) * 2 + 6) // 7
