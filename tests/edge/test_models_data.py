"""The trainer's reading source: firmware_sim's physics, stepped offline."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ModelError
from edge.models.data import EPISODE_S, METRICS, FirmwareSimSource, default_source
from shared.codec import decode
from shared.messages import Reading


async def test_offline_runs_are_what_simulated_devices_publish() -> None:
    from firmware_sim import Simulator

    # The same simulated spacing as the scenario (speed / rate = 2 s), in a tenth of a second.
    async with Simulator(None, "bearing-wear", seed=5, rate=200, speed=400, duration=0.1) as sim:
        await sim.run()
    readings = [decode(sent.payload, Reading) for sent in sim.recorded]
    published = np.array([[reading.metrics[m] for m in METRICS] for reading in readings])
    offline = default_source().bearing_wear(seed=5).values[: len(published)]
    assert len(published) >= 10
    np.testing.assert_array_equal(published, offline)


def test_bearing_wear_run_ends_before_the_failure_with_a_worn_bearing() -> None:
    run = default_source().bearing_wear(seed=1)
    assert run.failure_s is not None and run.degradation_s is not None
    assert (run.values.shape[0] - 1) * run.period_s < run.failure_s
    healthy = run.values[: int(run.degradation_s / run.period_s), 0]
    assert healthy.max() < 2.0 < run.values[-5:, 0].min()  # mm/s: 1.2 healthy, 7.1 at failure


def test_normal_operation_comes_as_episodes_from_start_up() -> None:
    runs = default_source().normal(seed=1, minutes=75)
    rows = [run.values.shape[0] for run in runs]
    assert sum(rows) * runs[0].period_s == 75 * 60
    assert rows[0] * runs[0].period_s == EPISODE_S
    # Every episode warms up from the same start, each with its own noise.
    assert all(abs(run.values[0, 1] - runs[0].values[0, 1]) < 1.0 for run in runs)
    assert not np.array_equal(runs[0].values[:10], runs[1].values[:10])
    assert runs[0].values[:, 0].max() < 2.0  # the healthy bearing never wears


def test_runs_replay_exactly_from_their_seed() -> None:
    first, again = default_source(), default_source()
    np.testing.assert_array_equal(
        first.bearing_wear(seed=3).values, again.bearing_wear(seed=3).values
    )


def test_a_scenario_without_a_bearing_failure_cannot_train() -> None:
    with pytest.raises(ModelError, match=r"no profile with .* failure_s"):
        FirmwareSimSource("pump-overheat")


def test_an_unknown_scenario_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="cannot train on scenario"):
        FirmwareSimSource("no-such-scenario")
