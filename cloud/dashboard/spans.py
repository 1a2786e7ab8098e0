"""`Span`: one hop of a trace, assembled by the cloud from what it sees.

Every baton message carries a W3C `traceparent`, and each hop stamps a child span of
the same trace on what it emits, so one trace id follows a reading from the sensor
through the gateway and the hub to the cloud, into a reflex decision and its command,
into a plan and its steps. The cloud sees the messages at the end of the path; the
times of the earlier hops travel with them:

    hop                   starts at                        ends at
    sensor → edge         Reading.ts_ms (device clock)     Baton-Hlc (gateway ingest)
    edge → hub            Baton-Hlc                        FLEET stored (JetStream time)
    hub → cloud           FLEET stored                     seen by this replica
    reflex <rule>         decision - latency_us            Decision.ts_ms
    device <action>       Command.issued_ms                CommandAck.ts_ms (device)
    plan <trigger>        the trigger seen by the cloud    Plan.created_ms
    step <n> <action>     step sent (plan history)         acked / failed
    handoff <step>        the step's session event         the next one

A span's id is the message's own span id where the hop has one (the sensor's, the
forwarder's header, the command's), so the exported spans join the trace a gateway
exports itself; hops with no message of their own get a fresh id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shared import trace

Where = Literal["sensor", "edge", "hub", "cloud"]
Attr = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    where: Where  # where the hop ends: what the time was spent getting to
    start_ms: float
    end_ms: float
    attrs: Mapping[str, Attr] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return max(0.0, self.end_ms - self.start_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "where": self.where,
            "start_ms": round(self.start_ms, 3),
            "end_ms": round(self.end_ms, 3),
            "duration_ms": round(self.duration_ms, 3),
            "attrs": dict(self.attrs),
        }


@dataclass(frozen=True, slots=True)
class Ids:
    """(trace id, span id) of a `traceparent`; None when it is not valid W3C."""

    trace_id: str
    span_id: str

    @classmethod
    def of(cls, traceparent: str | None) -> Ids | None:
        if not traceparent:
            return None
        try:
            ctx = trace.TraceContext.parse(traceparent)
        except ValueError:
            return None
        return cls(ctx.trace_id, ctx.span_id)


def derived_id(*parts: str) -> str:
    """A span id that is the same each time the same hop is seen (a replayed message
    must not add a second span)."""
    return hashlib.blake2b("/".join(parts).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Path:
    """The timestamps of one FLEET message's way to this replica."""

    message: Ids  # the payload's own traceparent: the span that made it
    header: Ids | None  # the forwarder's span (`traceparent` header)
    edge_ms: float | None  # Baton-Hlc: when the gateway took it
    hub_ms: float | None  # JetStream's stored time in FLEET
    seen_ms: float  # this replica


def transport_spans(path: Path, what: str, *, origin_ms: float | None = None) -> list[Span]:
    """The hops of one message `what`: sensor → edge (when `origin_ms`, the time the
    message was made, is known), edge → hub, hub → cloud."""
    ids = path.message
    spans: list[Span] = []
    parent: str | None = None
    if origin_ms is not None and path.edge_ms is not None:
        spans.append(Span(ids.trace_id, ids.span_id, None, f"{what} sensor → edge", "edge",
                          origin_ms, path.edge_ms))  # fmt: skip
        parent = ids.span_id
    if path.edge_ms is not None and path.hub_ms is not None:
        span_id = path.header.span_id if path.header else derived_id(ids.span_id, "hub")
        spans.append(Span(ids.trace_id, span_id, parent or ids.span_id,
                          f"{what} uplink edge → hub", "hub", path.edge_ms, path.hub_ms))  # fmt: skip
        parent = span_id
    start = path.hub_ms if path.hub_ms is not None else path.edge_ms
    if start is not None:
        spans.append(Span(ids.trace_id, derived_id(ids.span_id, "cloud"), parent or ids.span_id,
                          f"{what} hub → cloud", "cloud", start, path.seen_ms))  # fmt: skip
    return spans
