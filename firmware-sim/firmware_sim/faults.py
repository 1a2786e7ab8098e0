"""The scenario's fault schedule, turned into per-device fault objects and network events.

Reading faults (stuck, spike, dropout, clock skew, duplicate, malformed) act on one
reading tick of one device: each has a window of ticks `[start, end)` and edits the
`Tick` the device is about to put on the wire. Network faults (reconnect storm, outage)
act on connections and are returned as `NetworkEvent`s for the simulator to fire.
Which devices a fault hits is drawn from the run's seed, so it repeats too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from random import Random
from typing import Literal, Protocol

from firmware_sim.config import (
    ClockSkew,
    Dropout,
    Duplicate,
    Fault,
    FaultBase,
    Malformed,
    Metric,
    Outage,
    PayloadKind,
    ReconnectStorm,
    Scenario,
    Spike,
    Stuck,
)
from firmware_sim.errors import ScenarioError

FOREVER = 2**62


@dataclass(slots=True)
class Tick:
    """What one reading tick will send; faults edit it in place."""

    metrics: dict[str, float]
    skew_ms: int = 0
    copies: int = 1  # 0: lost on the way (dropout), 2: sent twice (duplicate)
    bad: list[PayloadKind] = field(default_factory=list)


class ReadingFault(Protocol):
    start: int
    end: int

    def apply(self, tick: Tick, rng: Random) -> None: ...


@dataclass(slots=True)
class StuckFault:
    start: int
    end: int
    metric: Metric
    value: float | None = None  # frozen at the first reading inside the window

    def apply(self, tick: Tick, rng: Random) -> None:
        if self.metric in tick.metrics:
            if self.value is None:
                self.value = tick.metrics[self.metric]
            tick.metrics[self.metric] = self.value


@dataclass(slots=True)
class SpikeFault:
    start: int
    end: int
    metric: Metric
    probability: float
    magnitude: float

    def apply(self, tick: Tick, rng: Random) -> None:
        hit, sign = rng.random(), rng.random()
        if hit < self.probability and self.metric in tick.metrics:
            tick.metrics[self.metric] += self.magnitude if sign < 0.5 else -self.magnitude


@dataclass(slots=True)
class DropoutFault:
    start: int
    end: int
    probability: float

    def apply(self, tick: Tick, rng: Random) -> None:
        if rng.random() < self.probability:
            tick.copies = 0


@dataclass(slots=True)
class DuplicateFault:
    start: int
    end: int
    probability: float

    def apply(self, tick: Tick, rng: Random) -> None:
        if rng.random() < self.probability and tick.copies:
            tick.copies = 2


@dataclass(slots=True)
class SkewFault:
    start: int
    end: int
    skew_ms: int

    def apply(self, tick: Tick, rng: Random) -> None:
        tick.skew_ms += self.skew_ms


@dataclass(slots=True)
class MalformedFault:
    start: int
    end: int
    payload: PayloadKind
    remaining: int

    def apply(self, tick: Tick, rng: Random) -> None:
        if self.remaining > 0:
            tick.bad.append(self.payload)
            self.remaining -= 1


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """A connection-level fault: fires once at `tick` on the connections of `devices`."""

    tick: int
    kind: Literal["reconnect_storm", "outage"]
    devices: tuple[int, ...]
    wall_s: float  # how long an outage lasts, in wall seconds


@dataclass(frozen=True, slots=True)
class FaultPlan:
    per_device: tuple[tuple[ReadingFault, ...], ...]
    network: tuple[NetworkEvent, ...]


def plan_faults(scenario: Scenario, devices: int, seed: int, sim_dt: float) -> FaultPlan:
    """Expand the scenario's `[[fault]]` list for a run of `devices` devices."""
    per_device: list[list[ReadingFault]] = [[] for _ in range(devices)]
    network: list[NetworkEvent] = []
    for index, spec in enumerate(scenario.fault):
        targets = _targets(spec, index, devices, seed)
        start, end = _window(spec, sim_dt)
        if isinstance(spec, ReconnectStorm | Outage):
            wall_s = (spec.for_s or 0.0) / scenario.speed
            network.append(NetworkEvent(start, spec.kind, targets, wall_s))
            continue
        for device in targets:
            per_device[device].append(_reading_fault(spec, start, end))
    return FaultPlan(tuple(tuple(f) for f in per_device), tuple(network))


def _window(spec: FaultBase, sim_dt: float) -> tuple[int, int]:
    start = math.ceil(spec.at_s / sim_dt - 1e-9)
    if spec.for_s is None:
        return start, FOREVER
    return start, math.ceil((spec.at_s + spec.for_s) / sim_dt - 1e-9)


def _targets(spec: FaultBase, index: int, devices: int, seed: int) -> tuple[int, ...]:
    chosen = sorted(set(spec.devices)) if spec.devices is not None else list(range(devices))
    if chosen and chosen[-1] >= devices:
        raise ScenarioError(
            f"device index {chosen[-1]} is out of range for a run of {devices} device(s)",
            field=f"fault.{index}.devices",
        )
    share = round(len(chosen) * spec.fraction)
    # Its own generator per fault: adding a fault never changes who another one hits.
    picked = Random(seed * 1_000_003 + index).sample(chosen, share)
    return tuple(sorted(picked))


def _reading_fault(spec: Fault, start: int, end: int) -> ReadingFault:
    if isinstance(spec, Stuck):
        return StuckFault(start, end, spec.metric)
    if isinstance(spec, Spike):
        return SpikeFault(start, end, spec.metric, spec.probability, spec.magnitude)
    if isinstance(spec, Dropout):
        return DropoutFault(start, end, spec.probability)
    if isinstance(spec, Duplicate):
        return DuplicateFault(start, end, spec.probability)
    if isinstance(spec, ClockSkew):
        return SkewFault(start, end, spec.skew_ms)
    if isinstance(spec, Malformed):
        return MalformedFault(start, end, spec.payload, spec.count)
    raise AssertionError(f"unhandled fault kind {spec.kind}")
