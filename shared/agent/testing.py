"""`ScriptedBackend`: the in-memory twin of a model, for tests of sessions and handoff.

    backend = ScriptedBackend(["Hello ", "world"], [ToolCall("query_rollups", {...})])

Each reply is the list of outputs one `stream()` call yields (strings become one-token
`TextDelta`s); after the script runs out it echoes the last user message. `seen` keeps
the messages of every call, `gate` (when set) holds each output until the test opens it,
and `waiting` is set while a reply is held there; `streaming` counts replies not closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from shared.agent.backend import Output, TextDelta, ToolSpec, estimate_tokens
from shared.messages import ChatMessage

Reply = Sequence[Output | str]


class ScriptedBackend:
    def __init__(self, *replies: Reply, n_ctx: int = 4096, name: str = "scripted") -> None:
        self._replies = list(replies)
        self._n_ctx = n_ctx
        self._name = name
        self.seen: list[list[ChatMessage]] = []
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()
        self.closed = 0
        self.streaming = 0  # replies begun and not yet closed

    @property
    def name(self) -> str:
        return self._name

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def notice(self) -> str | None:
        return None

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncGenerator[Output, None]:
        self.seen.append(list(messages))
        reply = self._replies.pop(0) if self._replies else [_echo(messages)]
        self.streaming += 1
        try:
            for out in reply:
                if self.gate is not None and not self.gate.is_set():
                    self.waiting.set()
                    await self.gate.wait()
                    self.waiting.clear()
                yield TextDelta(out) if isinstance(out, str) else out
        finally:
            self.streaming -= 1

    async def aclose(self) -> None:
        self.closed += 1


def _echo(messages: Sequence[ChatMessage]) -> str:
    last = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return f"echo: {last}"
