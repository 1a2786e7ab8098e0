"""Sensor physics: commands change the plant, wear leads to failure, seeds repeat.

The commands are the fleet's action vocabulary (`shared.actions`): besides fan, valve
and pump, a lower load cools the pump, lowers its current and slows its bearing's wear,
and a setpoint makes the device's own fan loop hold its temperature.
"""

from __future__ import annotations

from random import Random

import pytest
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


def test_a_lower_load_cools_draws_less_and_slows_the_wear() -> None:
    profile = pump(
        temperature=Temperature(start_c=50, ambient_c=25, rise_c=25),
        vibration=Vibration(noise=0.0, onset_s=300, failure_s=900),
        current=Current(noise_a=0.0, fan_a=0.0),
    )
    full, eased = Plant(profile, 10.0), Plant(profile, 10.0)
    assert eased.actuate("set_load", {"load": 0.5}) is None
    full_run = run(full, 800, 10.0, Random(5))
    eased_run = run(eased, 800, 10.0, Random(5))
    assert eased_run[-1]["temp_c"] < full_run[-1]["temp_c"] - 8  # toward 37.5, not 50 °C
    assert eased_run[-1]["current_a"] < full_run[-1]["current_a"] * 0.7
    assert full.bearing is not None and eased.bearing is not None
    # Bearing life goes with the cube of the load: an eighth of the pace from the start.
    assert eased.bearing.wear == pytest.approx(full.bearing.wear / 64, rel=1e-6)


def test_a_load_change_continues_the_wear_from_where_it_was() -> None:
    profile = pump(vibration=Vibration(noise=0.0, onset_s=0, failure_s=1000))
    plant, rng = Plant(profile, 10.0), Random(6)
    run(plant, 500, 10.0, rng)
    assert plant.bearing is not None
    half_way = plant.bearing.wear
    plant.actuate("set_load", {"load": 0.5})
    # 800 s at an eighth of the pace: a tenth of its life, where full load would end it.
    run(plant, 800, 10.0, rng, start=500)
    assert 0.24 <= half_way < 0.25 and 0.3 < plant.bearing.wear < 0.36
    assert not plant.bearing.failed


def test_a_setpoint_is_held_by_the_devices_own_fan_loop() -> None:
    profile = pump(temperature=Temperature(start_c=40, ambient_c=25, rise_c=60, noise_c=0.0))
    plant = Plant(profile, 5.0)
    assert plant.actuate("set_setpoint", {"setpoint": 50.0}) is None
    temps = [r["temp_c"] for r in run(plant, 3600, 5.0, Random(7))]
    assert max(temps) < 52.5 and abs(temps[-1] - 50.0) < 1.5  # uncontrolled: toward 85 °C
    assert plant.act.fan == 0.0  # the commanded fan is untouched; the loop adds its own


def test_setpoints_and_loads_the_device_cannot_take_are_refused() -> None:
    thermal = Plant(pump(temperature=Temperature(ambient_c=22)), 1.0)
    assert "below the ambient 22" in (thermal.actuate("set_setpoint", {"setpoint": 10.0}) or "")
    assert "bad params" in (thermal.actuate("set_load", {"load": 2.0}) or "")
    assert "bad params" in (thermal.actuate("set_load", {}) or "")
    sensor = Plant(pump(humidity={}), 1.0)
    assert "no temperature" in (sensor.actuate("set_setpoint", {"setpoint": 30.0}) or "")
    assert "no motor" in (sensor.actuate("set_load", {"load": 0.5}) or "")
    assert "unknown action" in (sensor.actuate("gw.ticket", {"kind": "check", "ref": "x"}) or "")
    assert thermal.act.setpoint is None and thermal.act.load == 1.0
