"""`train-anomaly` end to end: simulate → fit → export → quantise → evaluate → card.

Each stage is a function of the previous one's output; `train_anomaly` strings them
together and reports progress through a callback, so the CLI prints and tests stay quiet.
Seeds: training uses `seed`, the held-out normal runs `seed + 1`, the held-out
bearing-wear run `seed + 2`; the card records all three.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.models import evaluate
from edge.models.card import (
    CardInputs,
    CardMetrics,
    CardTraining,
    ModelCard,
    file_sha256,
    write_card,
)
from edge.models.data import DEFAULT_SCENARIO, ReadingSource, SimRun, default_source
from edge.models.export import build_model
from edge.models.quantize import quantize_int8
from edge.models.train import Fitted, fit

if TYPE_CHECKING:
    from numpy.typing import NDArray

Progress = Callable[[str], None]

DEFAULT_SEED = 7
DEFAULT_MINUTES = 480.0
DEFAULT_WINDOW = 16
# Held-out normal operation: at least an hour, so false alarms per hour means something.
MIN_HELDOUT_MINUTES = 60.0
SCORE_DOC = (
    "squared Mahalanobis distance / {k} of the window's features ({features}) from "
    "normal operation: about 1 on normal windows, higher is more anomalous"
)


@dataclass(frozen=True, slots=True)
class TrainOptions:
    out: Path
    seed: int = DEFAULT_SEED
    minutes: float = DEFAULT_MINUTES
    quantize: bool = True
    name: str = "bearing"
    version: str = "1.0.0"
    window: int = DEFAULT_WINDOW
    scenario: str = DEFAULT_SCENARIO


@dataclass(frozen=True, slots=True)
class TrainResult:
    model_path: Path
    card: ModelCard
    seconds: float


@dataclass(frozen=True, slots=True)
class _Runs:
    source: str
    train: list[SimRun]
    normal: list[SimRun]
    fault: SimRun


@dataclass(frozen=True, slots=True)
class _Evaluation:
    threshold: float
    figures: evaluate.FaultFigures
    false_alarms_per_hour: float
    fault_scores: NDArray[np.float64]
    normal_scores: list[NDArray[np.float64]]


def _quiet(_: str) -> None:
    return None


def _simulate(source: ReadingSource, options: TrainOptions, progress: Progress) -> _Runs:
    progress(
        f"simulating {options.minutes:g} min of normal operation "
        f"({source.name}, seed {options.seed})"
    )
    train = source.normal(seed=options.seed, minutes=options.minutes)
    heldout = max(MIN_HELDOUT_MINUTES, options.minutes / 4)
    progress(f"simulating held-out runs: {heldout:g} min normal, bearing wear up to the failure")
    normal = source.normal(seed=options.seed + 1, minutes=heldout)
    fault = source.bearing_wear(seed=options.seed + 2)
    return _Runs(source.name, train, normal, fault)


def _export(fitted: Fitted, runs: _Runs, options: TrainOptions, workdir: Path) -> Path:
    """Write the float32 model; return its path."""
    model = build_model(
        fitted,
        len(runs.fault.metrics),
        name=options.name,
        doc=f"baton anomaly model {options.name} {options.version}",
    )
    path = workdir / f"{options.name}.float.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _scores(model: Path, runs: Sequence[SimRun], window: int) -> list[NDArray[np.float64]]:
    return [evaluate.session_scores(model, run.values, window) for run in runs]


def _evaluate(model: Path, runs: _Runs, window: int, progress: Progress) -> _Evaluation:
    progress(f"scoring the training windows with {model.name} for the threshold")
    threshold = evaluate.threshold_from(np.concatenate(_scores(model, runs.train, window)))
    progress(f"threshold {threshold:.3f}; evaluating on the held-out runs")
    fault_scores = evaluate.session_scores(model, runs.fault.values, window)
    normal_scores = _scores(model, runs.normal, window)
    return _Evaluation(
        threshold=threshold,
        figures=evaluate.fault_figures(fault_scores, runs.fault, window, threshold),
        false_alarms_per_hour=evaluate.false_alarms_per_hour(normal_scores, runs.normal, threshold),
        fault_scores=fault_scores,
        normal_scores=normal_scores,
    )


def _agreement(float_model: Path, runs: _Runs, result: _Evaluation, window: int) -> float:
    """Share of held-out windows where the float model makes the int8 model's decision."""
    exact = np.concatenate(_scores(float_model, [runs.fault, *runs.normal], window))
    int8 = np.concatenate([result.fault_scores, *result.normal_scores])
    return evaluate.decision_agreement(exact, int8, result.threshold)


def command_line(options: TrainOptions) -> str:
    """The command that reproduces a model (recorded in its card)."""
    quantize = "--quantize" if options.quantize else "--no-quantize"
    scenario = "" if options.scenario == DEFAULT_SCENARIO else f" --scenario {options.scenario}"
    return (
        f"baton models train-anomaly --out {options.out} --seed {options.seed} "
        f"--minutes {options.minutes:g} {quantize}{scenario}"
    )


def _card_metrics(result: _Evaluation, agreement: float | None, scenario: str) -> CardMetrics:
    figures = result.figures
    return CardMetrics(
        precision=round(figures.precision, 4),
        recall=round(figures.recall, 4),
        lead_time_s=figures.lead_time_s,
        windows=int(result.fault_scores.shape[0]),
        int8_agreement=None if agreement is None else round(agreement, 5),
        false_alarms_per_hour=round(result.false_alarms_per_hour, 4),
        scenario=scenario,
    )


def _card(
    model: Path, runs: _Runs, options: TrainOptions, result: _Evaluation, agreement: float | None
) -> ModelCard:
    metrics, fault = runs.fault.metrics, runs.fault
    return ModelCard(
        name=options.name,
        version=options.version,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        description=f"pump bearing-wear anomaly scorer over {options.window} readings",
        score=SCORE_DOC.format(k=3 * len(metrics), features="mean, slope, std per metric"),
        inputs=CardInputs(
            metrics=metrics, window=options.window, shape=(1, options.window, len(metrics))
        ),
        threshold=round(result.threshold, 6),
        metrics=_card_metrics(result, agreement, fault.scenario),
        training=CardTraining(
            seed=options.seed,
            samples=sum(run.values.shape[0] for run in runs.train),
            minutes=options.minutes,
            period_s=fault.period_s,
            source=runs.source,
            evaluation=(
                f"normal: seed {options.seed + 1}, {sum(r.hours for r in runs.normal):g} h; "
                f"{fault.scenario}: seed {options.seed + 2}, onset {fault.degradation_s:g} s, "
                f"failure {fault.failure_s:g} s (simulated)"
            ),
            command=command_line(options),
        ),
        quantization="int8-dynamic" if options.quantize else None,
        sha256=file_sha256(model),
    )


def train_anomaly(
    options: TrainOptions, *, source: ReadingSource | None = None, progress: Progress = _quiet
) -> TrainResult:
    """Train, export, quantise and evaluate; write `<out>/<name>.onnx` and its card."""
    started = time.monotonic()
    runs = _simulate(source or default_source(options.scenario), options, progress)
    samples = sum(run.values.shape[0] for run in runs.train)
    progress(f"fitting on {samples} readings in {len(runs.train)} runs, window {options.window}")
    fitted = fit([run.values for run in runs.train], options.window)
    options.out.mkdir(parents=True, exist_ok=True)
    model = options.out / f"{options.name}.onnx"
    with tempfile.TemporaryDirectory(prefix="baton-train-") as workdir:
        float_model = _export(fitted, runs, options, Path(workdir))
        if options.quantize:
            count = quantize_int8(float_model, model)
            progress(f"quantised {count} MatMul weights to int8")
        else:
            model.write_bytes(float_model.read_bytes())
        result = _evaluate(model, runs, options.window, progress)
        agreement = (
            _agreement(float_model, runs, result, options.window) if options.quantize else None
        )
    card = _card(model, runs, options, result, agreement)
    write_card(card, model)
    return TrainResult(model, card, time.monotonic() - started)
