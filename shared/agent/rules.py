"""`RuleBackend`: the agent without a model. It says so, then answers what the tools can.

A question becomes at most one tool call (`intents.match`); once the tool's result is in
the conversation, the answer is that result's text. Anything else gets the list of what
can be asked. Same Protocol as a model, so sessions, events and handoff do not care.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

from shared.agent.backend import Output, TextDelta, ToolCall, ToolSpec, estimate_tokens
from shared.agent.intents import match
from shared.messages import ChatMessage

NO_MODEL = "No local model is configured (set agent.model_path); answering from rules and data."
# No model, no window: only the conversation kept in the snapshot bounds what is read.
RULES_N_CTX = 1 << 20


class RuleBackend:
    def __init__(self, notice: str = NO_MODEL) -> None:
        self._notice = notice

    @property
    def name(self) -> str:
        return "rules"

    @property
    def n_ctx(self) -> int:
        return RULES_N_CTX

    @property
    def notice(self) -> str | None:
        return self._notice

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncGenerator[Output, None]:
        if not messages:
            return
        last = messages[-1]
        if last.role == "tool":
            for line in _results_since_question(messages):
                yield TextDelta(line, estimate_tokens(line))
            return
        intent = match(last.content, {t.name for t in tools})
        if intent is not None:
            yield ToolCall(intent.tool, intent.args)
            return
        text = help_text(tools)
        yield TextDelta(text, estimate_tokens(text))

    async def aclose(self) -> None:
        return None


def _results_since_question(messages: Sequence[ChatMessage]) -> list[str]:
    results: list[str] = []
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "tool":
            results.append(message.content)
    return [text + "\n" for text in reversed(results)]


def help_text(tools: Sequence[ToolSpec]) -> str:
    lines = ["I can answer from this gateway's data. Ask me about:"]
    lines += [f"- {tool.description}" for tool in tools]
    return "\n".join(lines) + "\n"
