"""When a measured value fires: limits, debounce, hysteresis and cooldown, per device.

Every rule and model reduces a reading to one number (the value, its rate, a window
aggregate, an anomaly score) and hands it to `trip()` with that device's `TriggerState`:

- **limit**: the value is past `above` or `below`;
- **debounce**: `debounce` consecutive readings past the limit before it fires, so one
  spike does not switch an actuator;
- **hysteresis**: with `clear` set, a firing latches the trigger until the value comes back
  past `clear` (one command per excursion); without it the trigger re-arms as soon as the
  value is back inside the limit, or fires again while it stays past once the cooldown
  has run out (a repeated, idempotent command survives a lost one);
- **cooldown**: at least `cooldown_s` between two firings for one device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shared.messages.base import Scalar

Side = Literal["above", "below"]
Source = Literal["rule", "model"]


@dataclass(frozen=True, slots=True)
class Limit:
    above: float | None = None
    below: float | None = None
    clear: float | None = None

    def past(self, value: float) -> Side | None:
        if self.above is not None and value > self.above:
            return "above"
        if self.below is not None and value < self.below:
            return "below"
        return None

    def cleared(self, value: float, side: Side) -> bool:
        """Whether a trigger latched on `side` re-arms at `value` (only used with `clear`)."""
        assert self.clear is not None
        return value <= self.clear if side == "above" else value >= self.clear


@dataclass(slots=True)
class TriggerState:
    """One (rule, device) pair's memory between readings."""

    count: int = 0
    latched: Side | None = None
    last_fire_s: float = -math.inf


def trip(
    state: TriggerState,
    limit: Limit,
    value: float,
    now_s: float,
    *,
    debounce: int = 1,
    cooldown_s: float = 0.0,
) -> Side | None:
    """Advance `state` by one value; the side it fired on, or None."""
    if state.latched is not None:
        if not limit.cleared(value, state.latched):
            return None
        state.latched = None
    side = limit.past(value)
    if side is None:
        state.count = 0
        return None
    state.count += 1
    if state.count < debounce or now_s - state.last_fire_s < cooldown_s:
        return None
    state.count = 0
    state.last_fire_s = now_s
    if limit.clear is not None:
        state.latched = side
    return side


@dataclass(frozen=True, slots=True)
class Firing:
    """A rule or model decided to act: what to send, and why (the decision's inputs)."""

    source: Source
    name: str
    version: str
    device: str
    action: str
    params: Mapping[str, Scalar]
    deadline_ms: int
    inputs: Mapping[str, float] = field(default_factory=dict)
    score: float | None = None
    threshold: float | None = None
