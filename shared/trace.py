"""W3C Trace Context (https://www.w3.org/TR/trace-context/) carried by every message.

One trace id follows a reading from the sensor through reflex, uplink, planner and
handoff. It travels as the `traceparent` NATS header, as an MQTT v5 user property where
the broker has them, and as the `traceparent` payload field otherwise (MQTT 3.1.1).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

HEADER = "traceparent"
_PATTERN = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def parse(cls, traceparent: str) -> TraceContext:
        """Parse a `traceparent` value; ValueError if it is not version-00 W3C."""
        # fullmatch: `$` alone would accept a trailing newline into a NATS header.
        match = _PATTERN.fullmatch(traceparent)
        if match is None:
            raise ValueError(f"not a W3C traceparent: {traceparent!r}")
        trace_id, span_id, flags = match.groups()
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            raise ValueError("all-zero trace or span id is invalid (W3C trace-context §3.2.2)")
        return cls(trace_id, span_id, flags)

    @classmethod
    def new(cls) -> TraceContext:
        return cls(os.urandom(16).hex(), os.urandom(8).hex())

    def child(self) -> TraceContext:
        """The same trace, a new span: what each hop stamps on what it emits."""
        return TraceContext(self.trace_id, os.urandom(8).hex(), self.flags)

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def new_traceparent() -> str:
    return str(TraceContext.new())


def child_of(traceparent: str) -> str:
    """A child span of `traceparent`, or a fresh trace if it is not valid."""
    try:
        return str(TraceContext.parse(traceparent).child())
    except ValueError:
        return new_traceparent()


def is_valid(traceparent: str) -> bool:
    """Whether `TraceContext.parse` would take it (without building one: every message
    the edge decodes or forwards asks)."""
    match = _PATTERN.fullmatch(traceparent)
    return match is not None and match[1] != _ZERO_TRACE and match[2] != _ZERO_SPAN
