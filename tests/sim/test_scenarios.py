"""Scenario files: every shipped one loads; a bad one is `file: field: reason`."""

from __future__ import annotations

from pathlib import Path

import firmware_sim
import pytest
from firmware_sim import ScenarioError, list_scenarios, load_scenario
from firmware_sim.faults import MalformedFault, plan_faults

SHIPPED = {"pump-overheat", "bearing-wear", "flaky-network", "bad-payloads", "fleet"}


def test_the_public_surface_is_small() -> None:
    assert sorted(firmware_sim.__all__) == [
        "BrokerUnreachable",
        "DeviceState",
        "Scenario",
        "ScenarioError",
        "SimError",
        "SimSummary",
        "Simulator",
        "list_scenarios",
        "load_scenario",
        "run_simulation",
    ]


def test_every_shipped_scenario_loads_by_name() -> None:
    names = {name for name, _ in list_scenarios()}
    assert names >= SHIPPED
    for name in names:
        assert load_scenario(name).name == name


def test_bearing_wear_exposes_its_failure_time() -> None:
    vibration = load_scenario("bearing-wear").profile[0].vibration
    assert vibration is not None and vibration.onset_s < (vibration.failure_s or 0)


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (
            'name = "x"\nrate_hz = -1\n[[profile]]\nname = "a"\n[profile.humidity]\n',
            "rate_hz",
            "greater than 0",
        ),
        ('name = "x"\n[[profile]]\nname = "a"\n', "profile.0", "at least one sensor"),
        (
            'name = "x"\n[[profile]]\nname = "a"\n[profile.humidity]\n[[fault]]\nkind = "stuck"\nmetric = "rpm"\n',
            "fault.0.stuck.metric",
            "Input should be",
        ),
        (
            'name = "x"\nbogus = 1\n[[profile]]\nname = "a"\n[profile.humidity]\n',
            "bogus",
            "Extra inputs",
        ),
        ('name = "x"\n[[profile]\n', None, "invalid TOML"),
    ],
)
def test_a_bad_file_names_file_field_and_reason(
    tmp_path: Path, text: str, field: str | None, reason: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.file == str(path) and caught.value.field == field
    assert reason in str(caught.value) and str(caught.value).startswith(f"{path}: ")


def test_an_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ScenarioError, match="shipped: bad-payloads, bearing-wear"):
        load_scenario("no-such-scenario")


def test_fault_targets_are_seeded_and_counted_per_device() -> None:
    scenario = load_scenario("bad-payloads")
    plan = plan_faults(scenario, devices=3, seed=5, sim_dt=0.1)
    assert [len(faults) for faults in plan.per_device] == [3, 3, 3]
    first = plan.per_device[0][0]
    assert isinstance(first, MalformedFault) and (first.start, first.remaining) == (5, 3)
    fleet = load_scenario("fleet")
    a = plan_faults(fleet, devices=40, seed=1, sim_dt=1.0)
    b = plan_faults(fleet, devices=40, seed=1, sim_dt=1.0)
    stuck = [
        i
        for i, faults in enumerate(a.per_device)
        if any(type(f).__name__ == "StuckFault" for f in faults)
    ]
    assert len(stuck) == 2  # 5 % of 40
    assert [len(f) for f in a.per_device] == [len(f) for f in b.per_device]
