"""`SessionTap`: session log frames (`session.<id>.ev` in SESSIONS) → live agent streams
and the handoff timeline.

Frames are unpacked with `shared.session.frames.unpack` and folded in the log's order,
each event once, with the rule a follower's `SeqGate` applies to the live stream: an
event of an epoch below the newest seen is a fenced-out owner's (or a copy seen again),
an event at the newest epoch with a seq already taken is a replay, and a newer epoch may
number on from below the last seq (a new owner numbers on from the durable log, so
frames a fenced owner or an audit publisher got into the log late overlap its seqs).
So a replayed log (an ordered consumer re-created after a hub restart, a replica that
starts again and reads the backfill) adds nothing, and a newer owner's events are never
taken for a replay. A handoff is keyed by its request's (session, epoch, seq): one row
however often the log is read. What it keeps, bounded:

- per session, the agent stream as a person reads it: who runs it (agent, owner side,
  epoch), the conversation's latest text as it streams, and its state;
- per handoff, its steps: request → snapshot → accept → complete (or abort), each with
  the time since the step before, and the latency the old owner measured. A request
  nothing follows is an agent's suggestion and stays `requested`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from cloud.dashboard.spans import Ids, Span, derived_id
from cloud.dashboard.traces import Pick, TraceStore
from shared.errors import DecodeError
from shared.messages import (
    AgentComplete,
    AgentError,
    AgentEventBase,
    AgentStart,
    ContentChunk,
    HandoffAbort,
    HandoffAccept,
    HandoffComplete,
    HandoffRequest,
    HandoffSnapshot,
    ToolExecution,
)
from shared.session.frames import unpack

MAX_SESSIONS: Final = 100
ENDED: Final = frozenset({"completed", "aborted"})
MAX_HANDOFFS: Final = 200
MAX_TEXT: Final = 6000  # characters of the conversation kept for a page that joins late
TURN_RULE: Final = "\n────────\n"  # between two turns, as the page draws it


@dataclass
class AgentStream:
    session: str
    agent: str = ""
    owner: str = "edge"
    epoch: int = 0
    state: str = "idle"  # idle | running | done | error
    text: str = ""
    last_seq: int = -1  # the newest seq taken at `epoch`
    updated_ms: int = 0

    def take(self, event: AgentEventBase) -> bool:
        """Whether `event` is news to the fold (see the module docstring); notes it."""
        if event.epoch < self.epoch:
            return False  # a fenced-out owner's frame, or a copy of one seen again
        if event.epoch == self.epoch and event.seq <= self.last_seq:
            return False  # a replayed frame
        self.epoch, self.last_seq = event.epoch, event.seq
        return True

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session, "agent": self.agent, "owner": self.owner,
                "epoch": self.epoch, "state": self.state, "text": self.text,
                "updated_ms": self.updated_ms}  # fmt: skip


@dataclass
class HandoffStep:
    name: str
    at_ms: int
    ms: float  # since the step before


@dataclass
class Handoff:
    id: str
    session: str
    to: str
    reason: str
    trace_id: str
    span_id: str
    # requested (an agent's suggestion, nothing moved yet) | running | completed | aborted
    state: str = "requested"
    latency_ms: float | None = None
    steps: list[HandoffStep] = field(default_factory=list)

    def step(self, name: str, at_ms: int) -> None:
        since = self.steps[-1].at_ms if self.steps else at_ms
        self.steps.append(HandoffStep(name, at_ms, float(at_ms - since)))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "session": self.session, "to": self.to, "reason": self.reason,
                "trace_id": self.trace_id, "state": self.state, "latency_ms": self.latency_ms,
                "steps": [{"name": s.name, "at_ms": s.at_ms, "ms": s.ms} for s in self.steps]}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Update:
    """What one frame changed, for the event stream: agent events and handoffs."""

    agent: list[dict[str, Any]] = field(default_factory=list)
    handoffs: list[Handoff] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)


class SessionTap:
    def __init__(self, store: TraceStore) -> None:
        self._store = store
        self.streams: OrderedDict[str, AgentStream] = OrderedDict()
        self.handoffs: OrderedDict[str, Handoff] = OrderedDict()
        self._open: dict[str, str] = {}  # session -> id of its running handoff

    def on_frame(self, data: bytes) -> Update:
        try:
            events = unpack(data).events
        except DecodeError:
            return Update()
        update = Update()
        for event in events:
            stream = self._stream(event.session)
            if not stream.take(event):
                continue
            stream.updated_ms = event.ts_ms
            stream.agent = event.agent or stream.agent
            self._agent(stream, event, update)
            self._handoff(event, update)
        return update

    def _stream(self, session: str) -> AgentStream:
        stream = self.streams.get(session)
        if stream is None:
            stream = self.streams[session] = AgentStream(session)
            while len(self.streams) > MAX_SESSIONS:
                self.streams.popitem(last=False)
        self.streams.move_to_end(session)
        return stream

    def _agent(self, stream: AgentStream, event: AgentEventBase, update: Update) -> None:
        item: dict[str, Any] = {"session": event.session, "seq": event.seq, "type": _type(event),
                                "agent": stream.agent, "epoch": event.epoch, "ts_ms": event.ts_ms,
                                "owner": stream.owner}  # fmt: skip
        if isinstance(event, AgentStart):
            stream.state = "running"
            stream.text = (stream.text + TURN_RULE)[-MAX_TEXT:] if stream.text else ""
        elif isinstance(event, ContentChunk):
            stream.state = "running"
            stream.text = (stream.text + event.text)[-MAX_TEXT:]
            item["text"] = event.text
        elif isinstance(event, ToolExecution):
            item["text"] = f"[{event.tool}]"
        elif isinstance(event, AgentComplete):
            stream.state = "done"
            item["text"] = event.text
        elif isinstance(event, AgentError):
            stream.state = "error"
            item["text"] = f"{event.code}: {event.message}"
        elif isinstance(event, HandoffAccept | HandoffComplete):
            stream.owner = item["owner"] = event.owner
        update.agent.append(item)

    def _handoff(self, event: AgentEventBase, update: Update) -> None:
        if isinstance(event, HandoffRequest):
            handoff = self._begin(event)
        else:
            handoff = self.handoffs.get(self._open.get(event.session, ""))
        if handoff is None:
            return
        if isinstance(event, HandoffRequest):
            handoff.step("request", event.ts_ms)
        elif isinstance(event, HandoffSnapshot):
            handoff.step(f"snapshot {event.size} B", event.ts_ms)
            handoff.state = "running"
        elif isinstance(event, HandoffAccept):
            handoff.step(f"accepted by {event.owner}", event.ts_ms)
            handoff.state = "running"
        elif isinstance(event, HandoffComplete):
            handoff.step(f"complete: {event.owner} owns it", event.ts_ms)
            handoff.state, handoff.latency_ms = "completed", event.latency_ms
        elif isinstance(event, HandoffAbort):
            handoff.step(f"aborted: {event.reason}", event.ts_ms)
            handoff.state = "aborted"
        else:
            return
        if handoff.state in ENDED:
            del self._open[event.session]
        update.handoffs.append(handoff)
        spans = handoff_spans(handoff)
        self._store.add(spans)
        update.spans.extend(spans)

    def _begin(self, event: HandoffRequest) -> Handoff | None:
        """A new row for the request (None: one without a trace, or a row it already has)."""
        ids = Ids.of(event.traceparent)
        key = handoff_id(event)
        if ids is None or key in self.handoffs:
            return None
        handoff = Handoff(key, event.session, event.to, event.reason, ids.trace_id, ids.span_id)
        self.handoffs[handoff.id] = handoff
        while len(self.handoffs) > MAX_HANDOFFS:
            self.handoffs.popitem(last=False)
        self._open[event.session] = handoff.id
        label = f"handoff {event.session} → {event.to} ({event.reason or 'request'})"
        self._store.pick(Pick("handoff", ids.trace_id, label, event.ts_ms))
        return handoff


def handoff_id(request: HandoffRequest) -> str:
    """A handoff's row: its request's session, epoch and seq (a seq alone repeats when
    a newer owner numbers on from below it)."""
    return f"{request.session}-{request.epoch}-{request.seq}"


def handoff_spans(handoff: Handoff) -> list[Span]:
    """One span per step, from the step before; the whole handoff as their parent."""
    if not handoff.steps:
        return []
    first, last = handoff.steps[0], handoff.steps[-1]
    root = Span(handoff.trace_id, handoff.span_id, None,
                f"handoff {handoff.session} → {handoff.to}", "cloud", first.at_ms, last.at_ms,
                {"state": handoff.state, "latency_ms": handoff.latency_ms or 0.0})  # fmt: skip
    spans = [root]
    for before, step in zip(handoff.steps, handoff.steps[1:], strict=False):
        spans.append(Span(handoff.trace_id, derived_id(handoff.span_id, step.name),
                          handoff.span_id, step.name, "cloud" if handoff.to == "cloud" else "edge",
                          before.at_ms, step.at_ms))  # fmt: skip
    return spans


def _type(event: AgentEventBase) -> str:
    return str(getattr(event, "type", "event"))
