"""Declarative reflex rules (`[[rules]]` in edge.toml): pure classes with per-device state.

    ThresholdRule   the metric's value itself
    RateRule        |d value / dt| between two consecutive readings (device time)
    WindowRule      mean / max / min of the last `window` values, once the window is full

`Rule.observe(device, metrics, ts_ms, now_s)` returns a `Firing` or None; it never does
I/O, so the rules are tested with plain values and run on the hot path as they are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.config import RuleConfig
from edge.reflex.trigger import Firing, Limit, TriggerState, trip


@dataclass(slots=True)
class DeviceState:
    """Per device memory of one rule: the trigger, the previous value, the window."""

    trigger: TriggerState = field(default_factory=TriggerState)
    previous: tuple[float, int] | None = None
    window: deque[float] = field(default_factory=deque)


class Rule:
    """Base of every rule kind: scope, trigger and the firing; subclasses measure."""

    def __init__(self, config: RuleConfig) -> None:
        self.config = config
        self.name = config.name
        self.metric = config.metric
        self.limit = self._limit(config)
        self.measure_name = self._measure_name(config)
        self._states: dict[str, DeviceState] = {}

    @staticmethod
    def _measure_name(config: RuleConfig) -> str:
        """The decision input that holds what was compared with the limit."""
        return "value"

    @staticmethod
    def _limit(config: RuleConfig) -> Limit:
        return Limit(above=config.above, below=config.below, clear=config.clear)

    def applies(self, device: str, dclass: str | None) -> bool:
        cfg = self.config
        if cfg.device is not None and cfg.device != device:
            return False
        return cfg.dclass is None or cfg.dclass == dclass

    def observe(
        self, device: str, metrics: Mapping[str, float], ts_ms: int, now_s: float
    ) -> Firing | None:
        """Feed one reading of `device`; `now_s` is the monotonic receipt time (cooldown)."""
        value = metrics.get(self.metric)
        if value is None:
            return None
        state = self._states.get(device)
        if state is None:
            state = self._states[device] = self._new_state()
        measured = self.measure(state, value, ts_ms)
        if measured is None:
            return None
        cfg = self.config
        side = trip(
            state.trigger,
            self.limit,
            measured,
            now_s,
            debounce=cfg.debounce,
            cooldown_s=cfg.cooldown_s,
        )
        if side is None:
            return None
        return self._firing(device, value, measured)

    def _new_state(self) -> DeviceState:
        return DeviceState()

    def measure(self, state: DeviceState, value: float, ts_ms: int) -> float | None:
        return value

    def _firing(self, device: str, value: float, measured: float) -> Firing:
        cfg = self.config
        inputs = {self.metric: value}
        if self.measure_name != "value":
            inputs[self.measure_name] = measured
        return Firing(
            source="rule",
            name=cfg.name,
            version=cfg.version,
            device=device,
            action=cfg.action,
            params=cfg.params,
            deadline_ms=cfg.deadline_ms,
            inputs=inputs,
        )

    def forget(self, device: str) -> None:
        self._states.pop(device, None)


class ThresholdRule(Rule):
    pass


class RateRule(Rule):
    @staticmethod
    def _measure_name(config: RuleConfig) -> str:
        return "rate_per_s"

    @staticmethod
    def _limit(config: RuleConfig) -> Limit:
        return Limit(above=config.rate_per_s, clear=config.clear)

    def measure(self, state: DeviceState, value: float, ts_ms: int) -> float | None:
        previous, state.previous = state.previous, (value, ts_ms)
        if previous is None:
            return None
        dt_ms = ts_ms - previous[1]
        if dt_ms <= 0:
            # A repeated or out-of-order timestamp gives no rate; start again from here.
            return None
        return abs(value - previous[0]) * 1000.0 / dt_ms


class WindowRule(Rule):
    @staticmethod
    def _measure_name(config: RuleConfig) -> str:
        return config.agg

    def _new_state(self) -> DeviceState:
        return DeviceState(window=deque(maxlen=self.config.window))

    def measure(self, state: DeviceState, value: float, ts_ms: int) -> float | None:
        window = state.window
        window.append(value)
        if len(window) < self.config.window:
            return None
        agg = self.config.agg
        if agg == "max":
            return max(window)
        if agg == "min":
            return min(window)
        return sum(window) / len(window)


_KINDS: dict[str, type[Rule]] = {
    "threshold": ThresholdRule,
    "rate": RateRule,
    "window": WindowRule,
}


def build_rule(config: RuleConfig) -> Rule:
    return _KINDS[config.kind](config)
