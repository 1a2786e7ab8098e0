"""`TraceStore`: the spans of recent traces, and the things a person can pick to see one.

Bounded both ways: at most `MAX_TRACES` traces (the least recently touched go first)
and `MAX_PICKS` pickable items per kind. A trace that outlives its spans' eviction
simply shows fewer hops; nothing here grows with the fleet's age.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from cloud.dashboard.spans import Span

MAX_TRACES: Final = 5000
MAX_SPANS_PER_TRACE: Final = 256  # a plan of 64 steps with retries, a long handoff chain
MAX_PICKS: Final = 200

PickKind = Literal["reading", "command", "plan_step", "handoff"]
PICK_KINDS: Final[tuple[PickKind, ...]] = ("reading", "command", "plan_step", "handoff")


@dataclass(frozen=True, slots=True)
class Pick:
    """Something with a trace: a reading, a command, a plan step or a handoff."""

    kind: PickKind
    trace_id: str
    label: str
    at_ms: float

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "trace_id": self.trace_id, "label": self.label,
                "at_ms": self.at_ms}  # fmt: skip


class TraceStore:
    def __init__(self) -> None:
        self._traces: OrderedDict[str, dict[str, Span]] = OrderedDict()
        self._picks: dict[PickKind, deque[Pick]] = {
            kind: deque(maxlen=MAX_PICKS) for kind in PICK_KINDS
        }

    def add(self, spans: Iterable[Span]) -> None:
        """Add spans; one with a span id already there replaces it (a step that ended)."""
        for span in spans:
            found = self._traces.get(span.trace_id)
            if found is None:
                found = self._traces[span.trace_id] = {}
            else:
                self._traces.move_to_end(span.trace_id)
            if span.span_id in found or len(found) < MAX_SPANS_PER_TRACE:
                found[span.span_id] = span
        while len(self._traces) > MAX_TRACES:
            self._traces.popitem(last=False)

    def pick(self, item: Pick) -> None:
        self._picks[item.kind].append(item)

    def picks(self, kind: PickKind, limit: int = 50) -> list[Pick]:
        """The newest `limit` items of `kind`, newest first."""
        items = self._picks[kind]
        return [items[i] for i in range(len(items) - 1, max(-1, len(items) - 1 - limit), -1)]

    def spans(self, trace_id: str) -> list[Span]:
        """The trace's spans in time order (empty when unknown or evicted)."""
        return sorted(self._traces.get(trace_id, {}).values(), key=lambda s: s.start_ms)

    def __len__(self) -> int:
        return len(self._traces)
