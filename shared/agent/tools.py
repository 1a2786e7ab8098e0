"""Tools: JSON-schema parameters for the model, a plain async callable for the session.

    Tool(name, description, parameters, run, summarize=None)
    ToolBox(tools, summary=None)      .specs() .call(name, args, ctx) .summary()

`run(args, ctx)` returns a JSON value or raises `ToolError`; `summarize(result)` turns it
into the short text the conversation keeps (the model reads that, not a raw row dump,
so tool output stays within the context budget).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from shared.agent.backend import ToolSpec
from shared.agent.errors import ToolError

log = logging.getLogger(__name__)

# A tool's text in the conversation is cut here: one runaway result must not evict the
# rest of the context.
MAX_RESULT_CHARS = 2000

Args = Mapping[str, JsonValue]


@dataclass(slots=True)
class ToolContext:
    """What a tool knows of the session calling it. `epoch` fences side effects."""

    session: str
    epoch: int
    gw: str
    memory: MutableMapping[str, JsonValue] = field(default_factory=dict)
    tool_state: MutableMapping[str, JsonValue] = field(default_factory=dict)


Run = Callable[[Args, ToolContext], Awaitable[JsonValue]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, JsonValue]
    run: Run
    summarize: Callable[[JsonValue], str] | None = None

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    ok: bool
    result: JsonValue
    text: str


class ToolBox:
    def __init__(
        self,
        tools: Sequence[Tool] = (),
        *,
        summary: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._summary = summary

    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self._tools.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    async def summary(self) -> str:
        """The compact state the model starts every turn with ("" without a provider)."""
        return await self._summary() if self._summary is not None else ""

    async def call(self, name: str, args: Args, ctx: ToolContext) -> ToolOutcome:
        """Run a tool; a refusal or failure is an outcome (`ok=False`), never a raise."""
        tool = self._tools.get(name)
        if tool is None:
            return _failed(f"there is no tool {name!r}; tools: {', '.join(self._tools)}")
        try:
            check_args(tool.parameters, args)
            result = await tool.run(args, ctx)
        except ToolError as exc:
            return _failed(str(exc), exc.details)
        except Exception as exc:  # a tool's bug is the model's answer, not the session's end
            log.exception("tool %s failed", name, extra={"tool": name})
            return _failed(f"{name} failed: {exc!r}")
        text = tool.summarize(result) if tool.summarize is not None else _compact(result)
        return ToolOutcome(True, result, _cut(text))


def check_args(schema: Mapping[str, Any], args: Args) -> None:
    """The subset of JSON Schema tool parameters use: required keys and scalar types."""
    props: Mapping[str, Any] = schema.get("properties", {})
    missing = [name for name in schema.get("required", []) if name not in args]
    if missing:
        raise ToolError(f"missing argument(s): {', '.join(missing)}")
    for name, value in args.items():
        want = props.get(name, {}).get("type")
        if want is not None and not _is_type(value, want):
            raise ToolError(f"argument {name} must be a {want}, not {value!r}")


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _is_type(value: object, want: str) -> bool:
    if want in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES.get(want, (object,)))


def _compact(result: JsonValue) -> str:
    return json.dumps(result, separators=(",", ":"), default=str)


def _cut(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[: MAX_RESULT_CHARS - 20] + f" … (+{len(text) - MAX_RESULT_CHARS + 20} chars)"


def _failed(message: str, details: Mapping[str, JsonValue] | None = None) -> ToolOutcome:
    result: dict[str, JsonValue] = {"error": message, **(details or {})}
    return ToolOutcome(False, result, f"error: {message}")
