"""Where the training and evaluation readings come from: firmware_sim's pump physics.

`FirmwareSimSource` steps the simulator's own plant (`firmware_sim.physics.Plant`, the
code the simulated devices run) offline: no broker and no wall clock, so hours of
simulated operation take a fraction of a second and one seed replays a run exactly.
It takes the pump profile of a scenario with a bearing failure (`bearing-wear` by
default) and makes

- normal operation: that pump with a healthy bearing, as episodes that each start from
  the scenario's start-up state, so a warming pump is normal and not an anomaly;
- a fault run: the scenario as written, from start-up to the failure time in its file.

A run is sampled like a device publishes it: one reading per `speed / rate_hz` simulated
seconds, columns in `METRICS` order, oldest first. `ReadingSource` is the seam: tests
or another simulator can supply runs of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edge.errors import ModelError

if TYPE_CHECKING:
    from firmware_sim.config import Profile, Scenario
    from numpy.typing import NDArray

# The metric names firmware_sim devices publish (`firmware_sim.config.Metric`), so the
# model reads the keys of real `Reading.metrics`.
METRICS = ("vib_rms", "temp_c", "current_a")
DEFAULT_SCENARIO = "bearing-wear"
# Length of one normal episode: long enough to pass the thermal start-up transient
# (five time constants of the shipped pump) and see the steady state.
EPISODE_S = 1800.0
# Episode k of a normal run with seed s draws from Random(s * _SEED_STRIDE + k).
_SEED_STRIDE = 100_003


@dataclass(frozen=True, slots=True)
class SimRun:
    """One simulated run of one pump."""

    scenario: str
    values: NDArray[np.float64]  # [rows, len(metrics)]
    metrics: tuple[str, ...]
    period_s: float  # simulated seconds between two readings
    degradation_s: float | None = None  # onset of the wear, seconds from the start
    failure_s: float | None = None  # the simulated failure, seconds from the start

    @property
    def hours(self) -> float:
        return float(self.values.shape[0] * self.period_s) / 3600.0


def total_hours(runs: Sequence[SimRun]) -> float:
    return sum(run.hours for run in runs)


class ReadingSource(Protocol):
    """Simulated readings for training (normal) and evaluation (normal and a fault)."""

    @property
    def name(self) -> str: ...

    def normal(self, *, seed: int, minutes: float) -> list[SimRun]: ...

    def bearing_wear(self, *, seed: int) -> SimRun: ...


def _wearing_pump(scenario: Scenario) -> Profile:
    """The scenario's first profile with a scheduled bearing failure and every metric."""
    for profile in scenario.profile:
        vibration = profile.vibration
        if vibration is not None and vibration.failure_s is not None:
            if profile.temperature is None or profile.current is None:
                continue
            return profile
    raise ModelError(
        f"scenario {scenario.name!r} has no profile with temperature, current and a "
        "vibration failure_s: nothing to learn bearing wear from"
    )


class FirmwareSimSource:
    """Runs of one scenario's wearing pump, stepped with firmware_sim's physics."""

    def __init__(self, scenario: str | Path = DEFAULT_SCENARIO) -> None:
        from firmware_sim.errors import ScenarioError
        from firmware_sim.scenario import load_scenario

        try:
            self.scenario = load_scenario(scenario)
        except ScenarioError as exc:
            raise ModelError(f"cannot train on scenario {scenario}: {exc}") from exc
        self.profile = _wearing_pump(self.scenario)
        self.period_s = self.scenario.speed / self.scenario.rate_hz

    @property
    def name(self) -> str:
        return f"firmware_sim {self.scenario.name}/{self.profile.name}"

    def normal(self, *, seed: int, minutes: float) -> list[SimRun]:
        vibration = self.profile.vibration
        assert vibration is not None  # _wearing_pump checked it
        healthy = self.profile.model_copy(
            update={"vibration": vibration.model_copy(update={"failure_s": None})}
        )
        rows = max(1, round(minutes * 60.0 / self.period_s))
        per_episode = max(1, round(EPISODE_S / self.period_s))
        return [
            SimRun(
                "normal",
                self._run(healthy, seed * _SEED_STRIDE + k, min(per_episode, rows - start)),
                METRICS,
                self.period_s,
            )
            for k, start in enumerate(range(0, rows, per_episode))
        ]

    def bearing_wear(self, *, seed: int) -> SimRun:
        vibration = self.profile.vibration
        assert vibration is not None and vibration.failure_s is not None
        # Every reading strictly before the failure: flagging it afterwards is no help.
        rows = math.ceil(vibration.failure_s / self.period_s)
        values = self._run(self.profile, seed, rows)
        return SimRun(
            self.scenario.name,
            values,
            METRICS,
            self.period_s,
            degradation_s=vibration.onset_s,
            failure_s=vibration.failure_s,
        )

    def _run(self, profile: Profile, seed: int, rows: int) -> NDArray[np.float64]:
        from firmware_sim.physics import Plant

        plant, rng = Plant(profile, self.period_s), Random(seed)
        values = np.empty((rows, len(METRICS)))
        for n in range(rows):
            reading = plant.step(n * self.period_s, rng)
            values[n] = [reading[metric] for metric in METRICS]
        return values


def default_source(scenario: str | Path = DEFAULT_SCENARIO) -> ReadingSource:
    """The reading source `train-anomaly` uses."""
    return FirmwareSimSource(scenario)
