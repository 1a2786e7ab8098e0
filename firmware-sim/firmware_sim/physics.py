"""Sensor physics: a small plant per device that actuator commands really change.

Every model advances on the *simulated* clock (a fixed `dt` per tick, never wall time)
and draws its noise from the device's own seeded `random.Random`, in a fixed order, so
one seed replays a run exactly. Commands change `Actuators`, which the models read on
their next step: a fan lowers the temperature's equilibrium and the body follows with
its thermal inertia.

The commands are the device actions of the fleet's vocabulary (`shared.actions`), checked
against it before anything moves:

    fan           {"on": bool} | {"speed": 0..1}    cooling
    valve         {"open": bool} | {"position": 0..1}  coolant
    pump          {"on": bool}                      heat, vibration and current stop
    set_load      {"load": 0..1}                    less heat and current; the bearing
                                                    wears with the cube of the load
    set_setpoint  {"setpoint": °C}                  the device's own fan loop holds the
                                                    temperature there (not below ambient)

At the defaults (load 1, no setpoint) every model computes exactly what it did before
load and setpoint existed, so a seed replays older runs too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from random import Random

from firmware_sim.config import Battery, Current, Humidity, Profile, Temperature, Vibration
from shared import actions

Scalar = str | bool | int | float | None
# A stopped pump's accelerometer still reads a little (sensor floor, mm/s).
_STANDSTILL_RMS = 0.02
# An induction motor draws about a third of its rated current with no load on it.
_NO_LOAD_CURRENT = 0.3
# The device's temperature loop runs its fan at full speed this far above the setpoint
# (proportional band): narrow enough to hold within a degree, wide enough not to chatter.
_SETPOINT_BAND_C = 2.0


@dataclass(slots=True)
class Actuators:
    """What the device's outputs are set to; commands write, the models read."""

    fan: float = 0.0  # 0 (off) .. 1 (full speed)
    valve: float = 0.0  # 0 (closed) .. 1 (open)
    pump_on: bool = True
    load: float = 1.0  # share of the rated load the pump runs at
    setpoint: float | None = None  # temperature the device's own fan loop holds

    @property
    def running_load(self) -> float:
        return self.load if self.pump_on else 0.0


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
        cooling = min(1.0, self._fan(act) * cfg.fan_effect + act.valve * cfg.valve_effect)
        target = cfg.ambient_c + cfg.rise_c * act.running_load * (1.0 - cooling)
        self.temp += (target - self.temp) * self._alpha
        return self.temp + cfg.drift_c_per_h * t / 3600.0 + rng.gauss(0.0, cfg.noise_c)

    def _fan(self, act: Actuators) -> float:
        """The commanded fan, or more when the setpoint loop asks for it."""
        if act.setpoint is None:
            return act.fan
        duty = (self.temp - act.setpoint) / _SETPOINT_BAND_C
        return max(act.fan, min(1.0, max(0.0, duty)))


class Bearing:
    """Vibration RMS: flat, then a quadratic rise from onset to the failure RMS, then failed.

    The rise follows the bearing's *progress* from onset (0) to failure (1): linear in
    time at full load, slower at part load. Bearing life goes with the cube of the load
    (ISO 281: L10 = (C/P)^3), so progress runs at load^3 of its full-load pace.
    """

    __slots__ = ("_load", "_mark_p", "_mark_t", "cfg", "failed", "wear")

    def __init__(self, cfg: Vibration) -> None:
        self.cfg = cfg
        self.wear = 0.0
        self.failed = False
        # Progress is piecewise linear: `_mark_p` at `_mark_t`, then at `_load`'s pace.
        self._load = 1.0
        self._mark_t = cfg.onset_s
        self._mark_p = 0.0

    def step(self, t: float, act: Actuators, rng: Random) -> float:
        cfg = self.cfg
        if act.load != self._load:
            self._change_load(t, act.load)
        self.wear, self.failed = self._wear(t)
        noise = rng.gauss(0.0, cfg.noise)
        if not act.pump_on:
            return _STANDSTILL_RMS * (1.0 + abs(noise))
        rms = cfg.base_rms + (cfg.failure_rms - cfg.base_rms) * self.wear
        if self.failed:
            rms = cfg.failure_rms * cfg.after_failure
        return rms * (1.0 + noise)

    def _change_load(self, t: float, load: float) -> None:
        if t > self._mark_t:
            self._mark_p, self._mark_t = self._progress(t), t
        self._load = load

    def _progress(self, t: float) -> float:
        cfg = self.cfg
        if cfg.failure_s is None or t <= self._mark_t:
            return self._mark_p
        # In this order, at full load it is (t - onset) / span to the last bit.
        return self._mark_p + (t - self._mark_t) * self._load**3 / (cfg.failure_s - cfg.onset_s)

    def _wear(self, t: float) -> tuple[float, bool]:
        if self.cfg.failure_s is None or t < self.cfg.onset_s:
            return 0.0, False
        progress = self._progress(t)
        if progress >= 1.0:
            return 1.0, True
        # Quadratic: slow at first, accelerating, like spalling that feeds on itself.
        return progress**2, False


def motor_current(cfg: Current, act: Actuators, wear: float, rng: Random) -> float:
    # Exactly 1.0 at full load, so the default run computes what it always did.
    share = 1.0 - (1.0 - act.load) * (1.0 - _NO_LOAD_CURRENT)
    running = cfg.nominal_a * share * (1.0 + cfg.wear_gain * wear) if act.pump_on else 0.0
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
        if action not in actions.DEVICE_ACTIONS:
            known = ", ".join(sorted(actions.DEVICE_ACTIONS))
            return f"unknown action {action!r} (this device has {known})"
        why = actions.problem(action, params)  # strict: this firmware speaks the vocabulary
        if why is not None:
            return f"bad params for {action}: {why}"
        if action == actions.SET_LOAD:
            return self._set_load(float(params["load"] or 0.0))
        if action == actions.SET_SETPOINT:
            return self._set_setpoint(float(params["setpoint"] or 0.0))
        self._switch(action, params)
        return None

    def _switch(self, action: str, params: Mapping[str, Scalar]) -> None:
        if action == actions.FAN:
            self.act.fan = _level(params, "on", "speed")
        elif action == actions.VALVE:
            self.act.valve = _level(params, "open", "position")
        else:
            self.act.pump_on = bool(params["on"])

    def _set_load(self, load: float) -> str | None:
        if self.thermal is None and self.bearing is None and self.current is None:
            return "this device has no motor whose load could be set"
        self.act.load = load
        return None

    def _set_setpoint(self, setpoint: float) -> str | None:
        if self.thermal is None:
            return "this device has no temperature to regulate"
        ambient = self.thermal.cfg.ambient_c
        if setpoint < ambient:
            # It can only cool toward ambient: a loop chasing less would run forever.
            return f"setpoint {setpoint:g} °C is below the ambient {ambient:g} °C"
        self.act.setpoint = setpoint
        return None


def _level(params: Mapping[str, Scalar], flag: str, amount: str) -> float:
    """Checked params → 0..1: `{flag: false}` is off; else the amount, or full when on."""
    value = params.get(flag)
    if value is False:
        return 0.0
    level = params.get(amount)
    if isinstance(level, (int, float)) and not isinstance(level, bool):
        return float(level)
    return 1.0
