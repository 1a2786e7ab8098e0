"""Where the training and evaluation readings come from: simulated pump runs.

`ReadingSource` is the seam. `PumpPhysics` is baton's own deterministic pump model,
used until the firmware simulator exposes runs the trainer can consume; it follows the
same physics idea as `firmware_sim` so a model trained here flags the simulator's
`bearing-wear` too:

- normal operation: vibration RMS ~N(2.0, 0.1) mm/s with a slow drift, temperature on a
  40-60 °C load cycle, motor current ~N(8, 0.3) A;
- bearing wear: over the last 30 % before the failure the vibration RMS grows
  exponentially to ~7 mm/s (ISO 10816-3 zone D, "damage occurs"), and becomes noisier,
  while current and temperature rise slightly.

Readings are one row per `period_s`, columns in `METRICS` order, oldest first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

# The names firmware_sim devices publish (`firmware_sim.config.Metric`), so a model trained
# here reads the keys of real `Reading.metrics`.
METRICS = ("vib_rms", "temp_c", "current_a")
PERIOD_S = 1.0

VIBRATION_MM_S = 2.0
VIBRATION_NOISE = 0.1
# Slow drift of the healthy baseline (mounting, fluid temperature): two slow sines.
VIBRATION_DRIFT = ((0.05, 5400.0), (0.03, 1300.0))
TEMPERATURE_C = 50.0
TEMPERATURE_SWING = 8.0  # 42-58 °C over one load cycle; noise keeps it inside 40-60
TEMPERATURE_CYCLE_S = 7200.0
TEMPERATURE_NOISE = 0.3
CURRENT_A = 8.0
CURRENT_NOISE = 0.3

BEARING_FAILURE_S = 3600.0
BEARING_DEGRADATION = 0.3  # fraction of the run before the failure that degrades
WEAR_GROWTH = 4.0  # exponent of the RMS growth over the degradation period
WEAR_VIBRATION = 5.0  # mm/s added at failure: 2 -> 7 mm/s
WEAR_CURRENT = 0.8  # A added at failure (friction load)
WEAR_TEMPERATURE = 5.0  # °C added at failure


@dataclass(frozen=True, slots=True)
class SimRun:
    """One simulated run of one pump."""

    scenario: str
    values: NDArray[np.float64]  # [rows, len(metrics)]
    metrics: tuple[str, ...]
    period_s: float
    degradation_s: float | None = None  # start of the degradation, seconds from the start
    failure_s: float | None = None  # the simulated failure, seconds from the start

    @property
    def hours(self) -> float:
        return float(self.values.shape[0] * self.period_s) / 3600.0


class ReadingSource(Protocol):
    """Simulated readings for training (normal) and evaluation (normal and a fault)."""

    @property
    def name(self) -> str: ...

    def normal(self, *, seed: int, minutes: float) -> SimRun: ...

    def bearing_wear(self, *, seed: int) -> SimRun: ...


def _wear(times: NDArray[np.float64], onset: float, failure: float) -> NDArray[np.float64]:
    """0 before `onset`, rising exponentially to 1 at `failure`."""
    progress = np.clip((times - onset) / (failure - onset), 0.0, 1.0)
    growth: NDArray[np.float64] = np.expm1(WEAR_GROWTH * progress) / math.expm1(WEAR_GROWTH)
    return growth


class PumpPhysics:
    """baton's built-in deterministic pump model (see the module docstring)."""

    name = "baton-pump-physics"

    def __init__(self, period_s: float = PERIOD_S) -> None:
        self.period_s = period_s

    def normal(self, *, seed: int, minutes: float) -> SimRun:
        rows = max(1, round(minutes * 60.0 / self.period_s))
        values = self._healthy(np.random.default_rng(seed), rows)
        return SimRun("normal", values, METRICS, self.period_s)

    def bearing_wear(self, *, seed: int) -> SimRun:
        rows = round(BEARING_FAILURE_S / self.period_s)
        rng = np.random.default_rng(seed)
        values = self._healthy(rng, rows)
        onset = BEARING_FAILURE_S * (1.0 - BEARING_DEGRADATION)
        wear = _wear(np.arange(rows, dtype=np.float64) * self.period_s, onset, BEARING_FAILURE_S)
        # A damaged race adds impacts: the RMS gets noisier as well as larger.
        values[:, 0] += WEAR_VIBRATION * wear + rng.normal(0.0, VIBRATION_NOISE, rows) * wear
        values[:, 1] += WEAR_TEMPERATURE * wear
        values[:, 2] += WEAR_CURRENT * wear
        return SimRun("bearing-wear", values, METRICS, self.period_s, onset, BEARING_FAILURE_S)

    def _healthy(self, rng: np.random.Generator, rows: int) -> NDArray[np.float64]:
        times = np.arange(rows) * self.period_s
        drift = sum(
            amplitude * np.sin(2 * np.pi * times / period + rng.uniform(0, 2 * np.pi))
            for amplitude, period in VIBRATION_DRIFT
        )
        vibration = VIBRATION_MM_S + drift + rng.normal(0.0, VIBRATION_NOISE, rows)
        phase = rng.uniform(0, 2 * np.pi)
        cycle = np.sin(2 * np.pi * times / TEMPERATURE_CYCLE_S + phase)
        temperature = TEMPERATURE_C + TEMPERATURE_SWING * cycle
        temperature += rng.normal(0.0, TEMPERATURE_NOISE, rows)
        current = CURRENT_A + rng.normal(0.0, CURRENT_NOISE, rows)
        return np.stack([vibration, temperature, current], axis=1)


def default_source() -> ReadingSource:
    """The reading source `train-anomaly` uses."""
    return PumpPhysics()
