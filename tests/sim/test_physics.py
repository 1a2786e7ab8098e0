"""Sensor physics: commands change the plant, wear leads to failure, seeds repeat."""

from __future__ import annotations

from random import Random

from firmware_sim.config import Battery, Current, Profile, Temperature, Vibration
from firmware_sim.physics import Plant


def pump(**sensors: object) -> Profile:
    return Profile.model_validate({"name": "pump", **sensors})


def run(
    plant: Plant, seconds: float, dt: float, rng: Random, start: float = 0.0
) -> list[dict[str, float]]:
    steps = round(seconds / dt)
    return [plant.step(start + n * dt, rng) for n in range(steps)]


def test_temperature_climbs_then_a_fan_brings_it_down() -> None:
    profile = pump(temperature=Temperature(start_c=40, ambient_c=25, rise_c=60, tau_s=240))
    plant, rng = Plant(profile, 1.0), Random(1)
    run(plant, 300, 1.0, rng)
    hot = plant.thermal.temp if plant.thermal else 0.0
    assert hot > 60  # climbing toward 85 °C with thermal inertia
    assert plant.actuate("fan", {"on": True}) is None
    run(plant, 300, 1.0, rng, start=300)
    cooled = plant.thermal.temp if plant.thermal else 0.0
    assert cooled < hot - 10
    assert plant.actuate("fan", {"speed": 0.0}) is None and plant.act.fan == 0.0


def test_a_valve_cools_and_a_stopped_pump_stops_heating_and_vibrating() -> None:
    profile = pump(temperature=Temperature(start_c=60, rise_c=60), vibration=Vibration())
    plant = Plant(profile, 1.0)
    assert plant.actuate("valve", {"position": 1.0}) is None
    assert plant.actuate("pump", {"on": False}) is None
    readings = run(plant, 600, 1.0, Random(2))
    assert readings[-1]["temp_c"] < 30
    assert readings[-1]["vib_rms"] < 0.1


def test_bad_commands_are_refused_with_a_reason() -> None:
    plant = Plant(pump(temperature=Temperature()), 1.0)
    assert "unknown action" in (plant.actuate("warp", {}) or "")
    assert "bad params" in (plant.actuate("fan", {"speed": 3.0}) or "")
    assert "bad params" in (plant.actuate("fan", {"on": "yes"}) or "")
    assert plant.act.fan == 0.0


def test_vibration_trends_up_before_the_failure_and_current_follows() -> None:
    profile = pump(
        vibration=Vibration(base_rms=1.2, noise=0.0, onset_s=300, failure_s=900),
        current=Current(noise_a=0.0),
    )
    plant, rng = Plant(profile, 10.0), Random(3)
    series = run(plant, 1200, 10.0, rng)
    rms = [r["vib_rms"] for r in series]
    assert rms[0] == rms[29] == 1.2  # healthy until onset
    assert rms[30] < rms[60] < rms[89]  # the trend an anomaly model should flag early
    assert rms[89] < 7.1 <= rms[90] / 1.8  # failed at 900 s
    assert plant.bearing is not None and plant.bearing.failed
    assert series[-1]["current_a"] > series[0]["current_a"] * 1.1


def test_battery_drains_faster_with_the_fan_on() -> None:
    profile = pump(battery=Battery(drain_pct_per_h=1.0, fan_drain_pct_per_h=9.0))
    idle, fanned = Plant(profile, 60.0), Plant(profile, 60.0)
    fanned.actuate("fan", {"on": True})
    idle_level = run(idle, 3600, 60.0, Random(4))[-1]["battery_pct"]
    fanned_level = run(fanned, 3600, 60.0, Random(4))[-1]["battery_pct"]
    assert round(idle_level, 6) == 99.0 and round(fanned_level, 6) == 90.0


def test_the_same_seed_gives_the_same_series() -> None:
    profile = pump(temperature=Temperature(), vibration=Vibration(), current=Current())
    first = run(Plant(profile, 0.5), 60, 0.5, Random(42))
    again = run(Plant(profile, 0.5), 60, 0.5, Random(42))
    other = run(Plant(profile, 0.5), 60, 0.5, Random(43))
    assert first == again
    assert first != other
