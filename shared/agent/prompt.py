"""The text protocol between the session and any model: tool instructions, the raw
prompt format for models without a chat template, and the streaming tool-call parser.

A model calls a tool by writing one line

    <tool>{"name": "query_rollups", "arguments": {"device": "pump1"}}</tool>

and stopping. Plain text markers, not a vendor's function-calling format, because they
work with every GGUF (a 1-layer test model, a Llama, a Qwen) and with `create_completion`
as well as `create_chat_completion`; `</tool>` is a stop sequence, so the model spends
no token past the call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import JsonValue

from shared.agent.backend import Output, TextDelta, ToolCall, ToolSpec
from shared.messages import ChatMessage

TOOL_OPEN = "<tool>"
TOOL_CLOSE = "</tool>"
# Raw prompt role markers; also stop sequences so a model does not write the next turn.
ROLE_MARK = "<|{role}|>"
STOP = (TOOL_CLOSE, "<|user|>", "<|system|>", "<|tool|>")


def tools_instructions(tools: Sequence[ToolSpec]) -> str:
    """The system prompt's tool section: one compact line per tool."""
    if not tools:
        return ""
    lines = [
        "Tools (call one by replying with exactly "
        f'{TOOL_OPEN}{{"name": ..., "arguments": {{...}}}}{TOOL_CLOSE}, then stop):'
    ]
    for tool in tools:
        params = json.dumps(tool.parameters.get("properties", {}), separators=(",", ":"))
        lines.append(f"- {tool.name}{params}: {tool.description}")
    return "\n".join(lines)


def render_raw(messages: Sequence[ChatMessage]) -> str:
    """`<|role|>\\ncontent\\n` per message, then the assistant's open turn."""
    parts = [f"{ROLE_MARK.format(role=m.role)}\n{m.content}\n" for m in messages]
    parts.append(ROLE_MARK.format(role="assistant") + "\n")
    return "".join(parts)


def format_call(call: ToolCall) -> str:
    """How a call is kept in the conversation (the same text the model wrote)."""
    body = json.dumps({"name": call.name, "arguments": dict(call.arguments)})
    return f"{TOOL_OPEN}{body}{TOOL_CLOSE}"


def parse_call(body: str) -> ToolCall | None:
    """The call inside `<tool>...</tool>`, or None when it is not one."""
    try:
        data = json.loads(body.strip())
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    args = data.get("arguments", {})
    if not isinstance(args, dict):
        return None
    arguments: dict[str, JsonValue] = args
    return ToolCall(data["name"], arguments)


class ToolCallParser:
    """Splits streamed text into `TextDelta`s and at most one `ToolCall`.

    Text that could be the start of `<tool>` is held back until the next delta tells;
    everything after `<tool>` is buffered until `</tool>` or the end of the stream (the
    stop sequence usually cuts the closing marker off).
    """

    def __init__(self) -> None:
        self._held = ""
        self._call: list[str] | None = None
        self._held_tokens = 0

    def feed(self, delta: TextDelta) -> list[Output]:
        if self._call is not None:
            self._call.append(delta.text)
            return self._maybe_closed()
        text = self._held + delta.text
        tokens = self._held_tokens + delta.tokens
        start = text.find(TOOL_OPEN)
        if start >= 0:
            self._held, self._held_tokens = "", 0
            self._call = [text[start + len(TOOL_OPEN) :]]
            out = [TextDelta(text[:start], tokens)] if start else []
            return out + self._maybe_closed()
        keep = _partial_suffix(text, TOOL_OPEN)
        self._held = text[len(text) - keep :] if keep else ""
        self._held_tokens = tokens if keep == len(text) else 0
        emit = text[: len(text) - keep]
        return [TextDelta(emit, tokens - self._held_tokens)] if emit else []

    def finish(self) -> list[Output]:
        """The end of the stream: a pending call, or the held-back text."""
        if self._call is not None:
            body, self._call = "".join(self._call), None
            return _call_or_text(body.split(TOOL_CLOSE, 1)[0])
        held, self._held = self._held, ""
        return [TextDelta(held, self._held_tokens)] if held else []

    def _maybe_closed(self) -> list[Output]:
        assert self._call is not None
        body = "".join(self._call)
        if TOOL_CLOSE not in body:
            return []
        self._call = None
        return _call_or_text(body.split(TOOL_CLOSE, 1)[0])


def _call_or_text(body: str) -> list[Output]:
    call = parse_call(body)
    if call is not None:
        return [call]
    # Not a valid call: show the user what the model wrote rather than lose it.
    return [TextDelta(f"{TOOL_OPEN}{body}", 0)]


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `marker`."""
    for size in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0
