"""`HandoffPolicy`: when a session should move, from the device's state and the agent's limits.

    policy = HandoffPolicy()
    policy.on_device(session, DeviceSignals(temp_c=84.0), side="edge", now=loop.time())
        -> Decision(to="cloud", reason="thermal: 84.0 C >= 80.0")
    policy.on_agent(session, event, side="edge", uplink=True, now=...)   # handoff_request
        -> Decision(to="cloud", reason="needs_fleet: ...")

Triggers (DESIGN "Edge handoff"), in the order they are weighed:

- the uplink is down: nothing moves (a handoff needs the hub); an agent's request is
  remembered and made when the uplink comes back ("uplink returning");
- the device is hot or its battery low: the edge hands its sessions to the cloud (a
  throttled SoC makes llama.cpp crawl; inference drains a battery);
- the agent's own limits (a full context, a question that needs the fleet): it emits
  `handoff_request`, and the session goes to the cloud and stays there;
- a session the *device* sent to the cloud comes back once the device is well again
  (cooler than `cool_c`, battery above `ok_battery_pct`), if the edge is preferred.

Hysteresis (hot/cool, low/ok) and a dwell time after each move keep a session from
flapping between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from shared.messages import HandoffRequest
from shared.session.owner import Side

# Raspberry Pi firmware throttles at 80-85 C; Jetsons around 95 C (set `hot_c`).
HOT_C: Final = 80.0
COOL_C: Final = 70.0
LOW_BATTERY_PCT: Final = 20.0
OK_BATTERY_PCT: Final = 35.0
DWELL_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class DeviceSignals:
    temp_c: float | None = None  # SoC temperature; None: unknown
    battery_pct: float | None = None  # None: mains powered
    uplink: bool = True  # the hub is reachable


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    hot_c: float = HOT_C
    cool_c: float = COOL_C
    low_battery_pct: float = LOW_BATTERY_PCT
    ok_battery_pct: float = OK_BATTERY_PCT
    dwell_s: float = DWELL_S
    prefer: Side = "edge"  # where a session lives when nothing argues otherwise


@dataclass(frozen=True, slots=True)
class Decision:
    to: Side
    reason: str


@dataclass(slots=True)
class _SessionState:
    moved_at: float | None = None
    why: str = ""  # "device" | "agent" | "": why it is where it is
    deferred: str | None = None  # an agent's request made while the uplink was down
    uplink: bool = True  # as the last signals said


@dataclass(slots=True)
class HandoffPolicy:
    config: PolicyConfig = field(default_factory=PolicyConfig)
    _sessions: dict[str, _SessionState] = field(default_factory=dict)

    def on_device(
        self, session: str, signals: DeviceSignals, *, side: Side, now: float
    ) -> Decision | None:
        """What the device's state asks of `session`, owned on `side` now."""
        state = self._sessions.setdefault(session, _SessionState())
        returned = signals.uplink and not state.uplink
        state.uplink = signals.uplink
        if not signals.uplink or self._dwelling(state, now):
            return None
        if returned and state.deferred is not None and side == "edge":
            reason, state.deferred = state.deferred, None
            return self._move(state, Decision("cloud", f"uplink back: {reason}"), "agent", now)
        strain = self._strain(signals)
        if side == "edge" and strain is not None:
            return self._move(state, Decision("cloud", strain), "device", now)
        if side == "cloud" and self._may_return(state, signals):
            return self._move(state, Decision("edge", "device well again"), "", now)
        return None

    def on_agent(
        self, session: str, event: HandoffRequest, *, side: Side, uplink: bool, now: float
    ) -> Decision | None:
        """The agent asked to move (`handoff_request`): move now, or once the uplink is back."""
        state = self._sessions.setdefault(session, _SessionState())
        if event.to == side:
            return None
        state.uplink = uplink
        if not uplink:
            state.deferred = event.reason or "agent request"
            return None
        return self._move(state, Decision(event.to, event.reason or "agent request"), "agent", now)

    def moved(self, session: str, to: Side, *, now: float, why: str = "") -> None:
        """Record a move decided elsewhere (the CLI, the API): it dwells like ours."""
        state = self._sessions.setdefault(session, _SessionState())
        state.moved_at, state.why = now, why
        if to == "cloud":
            state.deferred = None

    def forget(self, session: str) -> None:
        self._sessions.pop(session, None)

    def _strain(self, signals: DeviceSignals) -> str | None:
        c = self.config
        if signals.temp_c is not None and signals.temp_c >= c.hot_c:
            return f"thermal: {signals.temp_c:.1f} C >= {c.hot_c:.1f}"
        if signals.battery_pct is not None and signals.battery_pct <= c.low_battery_pct:
            return f"battery: {signals.battery_pct:.0f}% <= {c.low_battery_pct:.0f}%"
        return None

    def _may_return(self, state: _SessionState, signals: DeviceSignals) -> bool:
        c = self.config
        if c.prefer != "edge" or state.why != "device":
            return False  # the agent sent it (its needs have not changed), or nobody did
        cool = signals.temp_c is None or signals.temp_c < c.cool_c
        charged = signals.battery_pct is None or signals.battery_pct >= c.ok_battery_pct
        return cool and charged

    def _dwelling(self, state: _SessionState, now: float) -> bool:
        return state.moved_at is not None and now - state.moved_at < self.config.dwell_s

    def _move(self, state: _SessionState, decision: Decision, why: str, now: float) -> Decision:
        state.moved_at, state.why = now, why
        return decision
