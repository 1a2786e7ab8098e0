"""The scenario file schema: what a TOML scenario may say, validated once where it enters.

A scenario names a device mix (`[[profile]]`, each with the sensors it carries), network
behaviour (`[network]`) and a fault schedule (`[[fault]]`). Times (`at_s`, `for_s`,
`failure_s`, `tau_s`) are in *simulated* seconds; `speed` maps them to wall time. Unknown
keys are errors, so a typo never passes silently (`shared.config.Section`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from shared.config import Section

# The metric names devices publish (the `metrics` keys of a Reading), with their units.
Metric = Literal["temp_c", "vib_rms", "current_a", "humidity_pct", "battery_pct"]
ProfileName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{0,23}$")]
PayloadKind = Literal["truncated", "wrong_types", "oversized"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Temperature(Section):
    """First-order thermal model: the body relaxes toward ambient + rise x (1 - cooling)."""

    start_c: float = 25.0
    ambient_c: float = 22.0
    rise_c: float = Field(default=30.0, ge=0)  # equilibrium rise with the pump running, uncooled
    tau_s: float = Field(default=120.0, gt=0)  # thermal time constant: the inertia
    fan_effect: Fraction = 0.8  # share of the rise a fan at full speed removes
    valve_effect: Fraction = 0.5  # share a fully open coolant valve removes
    noise_c: float = Field(default=0.05, ge=0)
    drift_c_per_h: float = 0.0  # sensor drift, added to the reading only


class Vibration(Section):
    """Pump vibration RMS (mm/s): flat while healthy, growing from `onset_s` to `failure_s`."""

    base_rms: float = Field(default=1.2, gt=0)
    noise: float = Field(default=0.03, ge=0)  # relative (multiplicative) noise
    onset_s: float = Field(default=0.0, ge=0)
    failure_s: float | None = Field(default=None, gt=0)  # ground truth for lead-time scoring
    # ISO 10816-3, medium machines: 7.1 mm/s is the zone C/D boundary ("damage occurs").
    failure_rms: float = Field(default=7.1, gt=0)
    after_failure: float = Field(default=1.8, ge=1)  # RMS multiplier once the bearing has failed

    @model_validator(mode="after")
    def _onset_before_failure(self) -> Vibration:
        if self.failure_s is not None and self.onset_s >= self.failure_s:
            raise ValueError("onset_s must be before failure_s")
        return self


class Current(Section):
    """Motor current (A): nominal while running, rising with bearing friction, 0 when off."""

    nominal_a: float = Field(default=8.0, ge=0)
    noise_a: float = Field(default=0.05, ge=0)
    wear_gain: float = Field(default=0.15, ge=0)  # fractional rise at bearing failure
    fan_a: float = Field(default=0.4, ge=0)  # the fan's own draw at full speed


class Humidity(Section):
    """Relative humidity (%): a daily cycle plus noise, clamped to 0..100."""

    base_pct: float = Field(default=45.0, ge=0, le=100)
    amplitude_pct: float = Field(default=8.0, ge=0)
    period_s: float = Field(default=86_400.0, gt=0)
    noise_pct: float = Field(default=0.3, ge=0)


class Battery(Section):
    """Battery charge (%): a steady drain, faster while the fan runs, floored at 0."""

    start_pct: float = Field(default=100.0, ge=0, le=100)
    drain_pct_per_h: float = Field(default=0.5, ge=0)
    fan_drain_pct_per_h: float = Field(default=4.0, ge=0)


class Profile(Section):
    """A kind of device in the mix; `weight` sets its share of `--devices`."""

    name: ProfileName
    weight: float = Field(default=1.0, gt=0)
    dclass: ProfileName | None = None  # the Reading's `dclass`; defaults to `name`
    temperature: Temperature | None = None
    vibration: Vibration | None = None
    current: Current | None = None
    humidity: Humidity | None = None
    battery: Battery | None = None

    @model_validator(mode="after")
    def _has_a_sensor(self) -> Profile:
        sensors = (self.temperature, self.vibration, self.current, self.humidity, self.battery)
        if all(sensor is None for sensor in sensors):
            raise ValueError("a profile needs at least one sensor table")
        return self


class FaultBase(Section):
    """When and to whom a fault applies. Devices are indices into the run's device list."""

    at_s: float = Field(default=0.0, ge=0)
    for_s: float | None = Field(default=None, gt=0)  # None: until the end of the run
    devices: list[Annotated[int, Field(ge=0)]] | None = None  # None: every device
    fraction: Fraction = 1.0  # of those, a seeded random share


class Stuck(FaultBase):
    kind: Literal["stuck"]
    metric: Metric


class Spike(FaultBase):
    kind: Literal["spike"]
    metric: Metric
    probability: Fraction = 0.05
    magnitude: float = 10.0  # added or subtracted (coin flip)


class Dropout(FaultBase):
    """A reading is lost on the way: its `seq` is used, so receivers see a gap."""

    kind: Literal["dropout"]
    probability: Fraction = 0.1


class ClockSkew(FaultBase):
    kind: Literal["clock_skew"]
    skew_ms: int


class Duplicate(FaultBase):
    """A reading is sent twice with the same `seq` (an at-least-once retry)."""

    kind: Literal["duplicate"]
    probability: Fraction = 0.1


class Malformed(FaultBase):
    """`count` bad payloads per device, one per reading from `at_s`, besides the reading."""

    kind: Literal["malformed"]
    payload: PayloadKind
    count: int = Field(default=1, ge=1)


class ReconnectStorm(FaultBase):
    """At `at_s` the connections drop at once; firmware reconnects with backoff and jitter."""

    kind: Literal["reconnect_storm"]


class Outage(FaultBase):
    """The network is gone for `for_s`: readings wait in the bounded local buffer."""

    kind: Literal["outage"]
    for_s: float = Field(gt=0)


Fault = Annotated[
    Stuck | Spike | Dropout | ClockSkew | Duplicate | Malformed | ReconnectStorm | Outage,
    Field(discriminator="kind"),
]


class Network(Section):
    """How devices talk to the broker."""

    qos: Literal[0, 1] = 1  # readings; status and command acks always use QoS 1
    command_qos: Literal[0, 1] = 1  # the command subscription
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    buffer: int = Field(default=1000, ge=0)  # readings kept per device while disconnected
    backoff_min_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _min_below_max(self) -> Network:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError("backoff_min_s must not exceed backoff_max_s")
        return self


class Scenario(Section):
    """A whole scenario file."""

    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    devices: int = Field(default=1, ge=1, le=100_000)
    duration_s: float = Field(default=60.0, ge=0)  # wall seconds; 0: until stopped
    rate_hz: float = Field(default=1.0, gt=0, le=1000)  # readings per device per wall second
    speed: float = Field(default=1.0, gt=0)  # simulated seconds per wall second
    network: Network = Network()
    profile: list[Profile] = Field(min_length=1, max_length=32)
    fault: list[Fault] = Field(default_factory=list, max_length=256)

    @model_validator(mode="after")
    def _unique_profiles(self) -> Scenario:
        names = [profile.name for profile in self.profile]
        if len(set(names)) != len(names):
            raise ValueError("profile names must be unique")
        return self
