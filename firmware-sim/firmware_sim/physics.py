"""Sensor physics: a small plant per device that actuator commands really change.

Every model advances on the *simulated* clock (a fixed `dt` per tick, never wall time)
and draws its noise from the device's own seeded `random.Random`, in a fixed order, so
one seed replays a run exactly. Commands (`fan`, `valve`, `pump`) change `Actuators`,
which the models read on their next step: a fan lowers the temperature's equilibrium and
the body follows with its thermal inertia.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from random import Random

from firmware_sim.config import Battery, Current, Humidity, Profile, Temperature, Vibration

Scalar = str | bool | int | float | None
# A stopped pump's accelerometer still reads a little (sensor floor, mm/s).
_STANDSTILL_RMS = 0.02


@dataclass(slots=True)
class Actuators:
    """What the device's outputs are set to; commands write, the models read."""

    fan: float = 0.0  # 0 (off) .. 1 (full speed)
    valve: float = 0.0  # 0 (closed) .. 1 (open)
    pump_on: bool = True


class Thermal:
    """First-order lag toward `ambient + rise x load x (1 - cooling)`."""

    __slots__ = ("_alpha", "cfg", "temp")

    def __init__(self, cfg: Temperature, dt: float) -> None:
        self.cfg = cfg
        self.temp = cfg.start_c
        # Exact discretisation of dT/dt = (target - T) / tau for a fixed step.
        self._alpha = 1.0 - math.exp(-dt / cfg.tau_s)

    def step(self, t: float, act: Actuators, rng: Random) -> float:
        cfg = self.cfg
        cooling = min(1.0, act.fan * cfg.fan_effect + act.valve * cfg.valve_effect)
        load = 1.0 if act.pump_on else 0.0
        target = cfg.ambient_c + cfg.rise_c * load * (1.0 - cooling)
        self.temp += (target - self.temp) * self._alpha
        return self.temp + cfg.drift_c_per_h * t / 3600.0 + rng.gauss(0.0, cfg.noise_c)


class Bearing:
    """Vibration RMS: flat, then a quadratic rise from onset to the failure RMS, then failed."""

    __slots__ = ("cfg", "failed", "wear")

    def __init__(self, cfg: Vibration) -> None:
        self.cfg = cfg
        self.wear = 0.0
        self.failed = False

    def step(self, t: float, act: Actuators, rng: Random) -> float:
        cfg = self.cfg
        self.wear, self.failed = _wear(cfg, t)
        noise = rng.gauss(0.0, cfg.noise)
        if not act.pump_on:
            return _STANDSTILL_RMS * (1.0 + abs(noise))
        rms = cfg.base_rms + (cfg.failure_rms - cfg.base_rms) * self.wear
        if self.failed:
            rms = cfg.failure_rms * cfg.after_failure
        return rms * (1.0 + noise)


def _wear(cfg: Vibration, t: float) -> tuple[float, bool]:
    if cfg.failure_s is None or t < cfg.onset_s:
        return 0.0, False
    if t >= cfg.failure_s:
        return 1.0, True
    # Quadratic: slow at first, accelerating, like spalling that feeds on itself.
    return ((t - cfg.onset_s) / (cfg.failure_s - cfg.onset_s)) ** 2, False


def motor_current(cfg: Current, act: Actuators, wear: float, rng: Random) -> float:
    running = cfg.nominal_a * (1.0 + cfg.wear_gain * wear) if act.pump_on else 0.0
    return max(0.0, running + act.fan * cfg.fan_a + rng.gauss(0.0, cfg.noise_a))


def humidity(cfg: Humidity, t: float, rng: Random) -> float:
    cycle = cfg.amplitude_pct * math.sin(2.0 * math.pi * t / cfg.period_s)
    return min(100.0, max(0.0, cfg.base_pct + cycle + rng.gauss(0.0, cfg.noise_pct)))


class Cell:
    """Battery charge: drains every step, faster while the fan runs."""

    __slots__ = ("cfg", "level")

    def __init__(self, cfg: Battery) -> None:
        self.cfg = cfg
        self.level = cfg.start_pct

    def step(self, dt: float, act: Actuators) -> float:
        drain = self.cfg.drain_pct_per_h + act.fan * self.cfg.fan_drain_pct_per_h
        self.level = max(0.0, self.level - drain * dt / 3600.0)
        return self.level


class Plant:
    """The sensors of one device and the actuators that drive them."""

    __slots__ = ("act", "bearing", "cell", "current", "dt", "humidity", "thermal")

    def __init__(self, profile: Profile, dt: float) -> None:
        self.dt = dt
        self.act = Actuators()
        self.thermal = Thermal(profile.temperature, dt) if profile.temperature else None
        self.bearing = Bearing(profile.vibration) if profile.vibration else None
        self.current = profile.current
        self.humidity = profile.humidity
        self.cell = Cell(profile.battery) if profile.battery else None

    def step(self, t: float, rng: Random) -> dict[str, float]:
        """Advance to simulated time `t` and read every sensor once."""
        act = self.act
        metrics: dict[str, float] = {}
        if self.thermal is not None:
            metrics["temp_c"] = self.thermal.step(t, act, rng)
        if self.bearing is not None:
            metrics["vib_rms"] = self.bearing.step(t, act, rng)
        if self.current is not None:
            wear = self.bearing.wear if self.bearing is not None else 0.0
            metrics["current_a"] = motor_current(self.current, act, wear, rng)
        if self.humidity is not None:
            metrics["humidity_pct"] = humidity(self.humidity, t, rng)
        if self.cell is not None:
            metrics["battery_pct"] = self.cell.step(self.dt, act)
        return metrics

    def actuate(self, action: str, params: Mapping[str, Scalar]) -> str | None:
        """Apply a command; None when applied, else the reason it was refused."""
        if action == "fan":
            level = _level(params, "on", "speed")
            if level is not None:
                self.act.fan = level
        elif action == "valve":
            level = _level(params, "open", "position")
            if level is not None:
                self.act.valve = level
        elif action == "pump":
            level = _level(params, "on", "on")
            if level is not None:
                self.act.pump_on = level > 0.0
        else:
            return f"unknown action {action!r} (this device has fan, valve, pump)"
        return None if level is not None else f"bad params for {action}: {dict(params)}"


def _level(params: Mapping[str, Scalar], flag: str, amount: str) -> float | None:
    """`{flag: bool}` -> 0 or 1, `{amount: 0..1}` -> the amount, anything else -> None."""
    value = params.get(flag, params.get(amount))
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and 0.0 <= value <= 1.0:
        return float(value)
    return None
