"""Score simulated runs with a real onnxruntime session and turn scores into figures.

Window `i` of a run covers readings `i .. i + window - 1` and is scored when its last
reading arrives, so its time is that reading's. On the `bearing-wear` run a window is
positive when its time lies in the degradation period (onset to failure):

    precision, recall   over windows, alarm = score > threshold
    lead time           failure time minus the first alarm inside the degradation period
                        (an alarm before the onset is a false positive, not lead time)
    false alarms / h    alarm episodes (a rise above the threshold) per hour of a
                        held-out normal run
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.models.data import total_hours
from edge.models.features import sliding_windows

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from edge.models.data import SimRun

# The threshold sits above the 99.9th percentile of the training scores by this factor:
# the percentile of a few hours of data underestimates the tail of weeks of operation,
# and wear grows fast enough that the margin costs seconds of lead time, not minutes.
THRESHOLD_PERCENTILE = 99.9
THRESHOLD_MARGIN = 2.0


@dataclass(frozen=True, slots=True)
class FaultFigures:
    precision: float
    recall: float
    lead_time_s: float | None


def session_scores(model: Path, values: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Score every window of `values` one at a time, as the reflex engine does.

    One call per window on purpose: int8 dynamic quantisation picks its activation scale
    per call, so a batch would score each window differently from the gateway.
    """
    from edge.models.scorer import open_session

    session = open_session(model)
    input_name = session.get_inputs()[0].name
    windows = sliding_windows(values, window).astype(np.float32)
    scores = np.empty(windows.shape[0])
    for i in range(windows.shape[0]):
        scores[i] = session.run(None, {input_name: windows[i : i + 1]})[0][0]
    return scores


def threshold_from(training_scores: NDArray[np.float64]) -> float:
    return float(np.percentile(training_scores, THRESHOLD_PERCENTILE) * THRESHOLD_MARGIN)


def window_times(run: SimRun, count: int, window: int) -> NDArray[np.float64]:
    """Time (s from the start of the run) of each window: that of its last reading."""
    times: NDArray[np.float64] = np.arange(window - 1, count + window - 1, dtype=np.float64)
    times *= run.period_s
    return times


def fault_figures(
    scores: NDArray[np.float64], run: SimRun, window: int, threshold: float
) -> FaultFigures:
    if run.degradation_s is None or run.failure_s is None:
        raise ValueError(f"run {run.scenario!r} has no degradation period")
    times = window_times(run, scores.shape[0], window)
    alarm = scores > threshold
    positive = (times >= run.degradation_s) & (times <= run.failure_s)
    hits = int(np.sum(alarm & positive))
    alarms, positives = int(np.sum(alarm)), int(np.sum(positive))
    caught = times[alarm & positive]
    return FaultFigures(
        precision=hits / alarms if alarms else 0.0,
        recall=hits / positives if positives else 0.0,
        lead_time_s=float(run.failure_s - caught[0]) if caught.size else None,
    )


def alarm_episodes(scores: NDArray[np.float64], threshold: float) -> int:
    """How many times the score rises above the threshold (a first window above counts)."""
    alarm = scores > threshold
    if alarm.size == 0:
        return 0
    return int(alarm[0]) + int(np.sum(alarm[1:] & ~alarm[:-1]))


def false_alarms_per_hour(
    scores: Sequence[NDArray[np.float64]], runs: Sequence[SimRun], threshold: float
) -> float:
    """Alarm episodes per hour over normal runs (`scores[i]` belongs to `runs[i]`)."""
    episodes = sum(alarm_episodes(run_scores, threshold) for run_scores in scores)
    return episodes / total_hours(runs)


def decision_agreement(a: NDArray[np.float64], b: NDArray[np.float64], threshold: float) -> float:
    """Fraction of windows on which two models make the same alarm decision."""
    return float(np.mean((a > threshold) == (b > threshold)))
