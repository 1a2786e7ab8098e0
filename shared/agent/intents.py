"""Intent matching for the model-less agent: a question in, at most one tool call out.

Plain keyword rules over the question, in priority order (an actuation verb beats a
reading word: "turn the fan on for pump1" must actuate, not report the fan). A device is
any id-like word with a digit, `-` or `_` in it (`pump1`, `boiler-2`); the tools resolve
a missing or unknown one against what the gateway knows.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field

from pydantic import JsonValue

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*[A-Za-z0-9]")
_SPAN = re.compile(r"\b(?:last|past)\s+(\d+)\s*(min(?:ute)?s?|h(?:our)?s?)\b", re.I)
_TURN = re.compile(
    r"\b(?:turn|switch)\s+(?:(on|off)\s+(?:the\s+)?([a-z][a-z0-9_]*)|"
    r"(?:the\s+)?([a-z][a-z0-9_]*)\s+(on|off))\b",
    re.I,
)
_ACTUATE = re.compile(r"\b(?:actuate|send|run)\s+([a-z][a-z0-9_]*)\b", re.I)
_ABOUT_THE_PAST = frozenset({"why", "did", "when", "was", "were", "has", "had", "who"})
_NOT_ACTIONS = frozenset({"for", "to", "it", "on", "off", "at", "in", "now", "please"})
_PARAM = re.compile(r"\b([a-z][a-z0-9_]*)\s*=\s*([^\s,]+)", re.I)

_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("explain_decision", ("why", "explain", "fired", "trigger", "decision", "reflex")),
    ("list_rules", ("rule", "threshold", "limit", "hysteresis", "debounce")),
    ("read_twin", ("twin", "desired", "reported", "applied")),
    ("query_rollups", ("rollup", "average", "mean", "min", "max", "trend", "history", "hour")),
    ("recent_readings", ("reading", "current", "now", "latest", "value", "temperature",
                         "pressure", "vibration", "humidity", "status", "how is", "how's")),
    ("list_devices", ("device", "sensor", "what do you see")),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Intent:
    tool: str
    args: dict[str, JsonValue] = field(default_factory=dict)


def match(question: str, tools: Container[str]) -> Intent | None:
    """The tool call that answers `question`, if one of `tools` does."""
    text = question.lower()
    actuation = _actuation(question)
    if actuation is not None and "actuate" in tools:
        return actuation
    for tool, words in _KEYWORDS:
        if tool in tools and any(word in text for word in words):
            return Intent(tool, _common_args(question, tool))
    return None


def device_in(question: str) -> str | None:
    word: str
    for word in _WORD.findall(question):
        if any(c.isdigit() or c in "-_" for c in word):
            return word
    return None


def _common_args(question: str, tool: str) -> dict[str, JsonValue]:
    args: dict[str, JsonValue] = {}
    device = device_in(question)
    if device is not None and tool != "list_devices":
        args["device"] = device
    span = _SPAN.search(question)
    if span is not None and tool == "query_rollups":
        n = int(span.group(1))
        args["minutes"] = n * 60 if span.group(2).lower().startswith("h") else n
    return args


def _actuation(question: str) -> Intent | None:
    words = set(_WORD.findall(question.lower()))
    if words & _ABOUT_THE_PAST:
        return None  # "why did the fan turn on?" asks for an explanation, not an action
    turn = _TURN.search(question)
    params: dict[str, JsonValue] = {}
    if turn is not None:
        state, action = (turn.group(1), turn.group(2)) if turn.group(1) else turn.group(4, 3)
        if action.lower() in _NOT_ACTIONS:
            return None
        params["on"] = state.lower() == "on"
        rest = question[: turn.start()] + question[turn.end() :]
    else:
        verb = _ACTUATE.search(question)
        if verb is None:
            return None
        action, rest = verb.group(1), question[verb.end() :]
    params.update({k: _scalar(v) for k, v in _PARAM.findall(rest)})
    args: dict[str, JsonValue] = {"action": action.lower(), "params": params}
    device = device_in(_PARAM.sub("", rest))
    if device is not None:
        args["device"] = device
    return Intent("actuate", args)


def _scalar(text: str) -> JsonValue:
    lowered = text.lower()
    if lowered in ("true", "on", "yes"):
        return True
    if lowered in ("false", "off", "no"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


_FLEET = ("fleet", "all gateways", "other gateways", "every gateway", "across gateways",
          "all sites", "other sites", "every site", "whole plant", "all plants")  # fmt: skip


def needs_fleet(question: str) -> str | None:
    """The phrase that makes `question` a fleet question (one gateway cannot answer it)."""
    text = " ".join(question.lower().split())
    return next((phrase for phrase in _FLEET if phrase in text), None)
