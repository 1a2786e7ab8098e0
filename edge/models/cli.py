"""`baton models`: train the anomaly model and inspect model cards."""

from __future__ import annotations

from pathlib import Path

import click

from edge.models.bench import measure
from edge.models.card import ModelCard, card_path
from edge.models.data import DEFAULT_SCENARIO
from edge.models.pipeline import DEFAULT_MINUTES, DEFAULT_SEED, TrainOptions, train_anomaly
from edge.models.scorer import OnnxScorer

# Below this the fit has fewer windows than it has parameters to estimate reliably.
MIN_MINUTES = 5.0


@click.group(name="models")
def models_group() -> None:
    """Anomaly models for the reflex engine: train one, inspect a card."""


@models_group.command("train-anomaly")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    help="Directory for <name>.onnx and <name>.card.json.",
)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option(
    "--minutes",
    type=click.FloatRange(min=MIN_MINUTES),
    default=DEFAULT_MINUTES,
    show_default=True,
    help="Simulated minutes of normal operation to train on.",
)
@click.option("--quantize/--no-quantize", default=True, show_default=True, help="int8 weights.")
@click.option(
    "--scenario",
    default=DEFAULT_SCENARIO,
    show_default=True,
    help="firmware_sim scenario (name or file) whose pump, with its bearing failure, to learn.",
)
@click.option("--name", default="bearing", show_default=True)
@click.option("--version", "version", default="1.0.0", show_default=True)
def train_anomaly_command(
    out: Path, seed: int, minutes: float, quantize: bool, scenario: str, name: str, version: str
) -> None:
    """Train the pump anomaly model on simulated normal operation, evaluate it on a
    held-out bearing-wear run, and write the ONNX model with its card."""
    options = TrainOptions(
        out=out,
        seed=seed,
        minutes=minutes,
        quantize=quantize,
        scenario=scenario,
        name=name,
        version=version,
    )
    result = train_anomaly(options, progress=lambda line: click.echo(f"· {line}", err=True))
    size_kb = result.model_path.stat().st_size / 1024
    kind = "int8" if quantize else "float32"
    click.echo(
        f"wrote {result.model_path} ({kind}, {size_kb:.1f} kB) and "
        f"{card_path(result.model_path).name} in {result.seconds:.1f} s"
    )
    click.echo(_figures(result.card))


def _figures(card: ModelCard) -> str:
    m = card.metrics
    lead = "missed" if m.lead_time_s is None else f"{m.lead_time_s:g} s before failure"
    agree = "" if m.int8_agreement is None else f" · int8 agrees {m.int8_agreement:.2%}"
    return (
        f"threshold {card.threshold:.3f} · precision {m.precision:.2f} · recall {m.recall:.2f}"
        f" · lead time {lead} · false alarms {m.false_alarms_per_hour:.2f}/h{agree}"
    )


@models_group.command("inspect")
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def inspect_command(model: Path | None, as_json: bool) -> None:
    """Check MODEL (default: the shipped one) against its card and print the card."""
    scorer = OnnxScorer.load(model)
    card = scorer.card
    if as_json:
        click.echo(card.model_dump_json(indent=2))
        return
    click.echo(f"{card.name} {card.version}  ({scorer.path}, sha256 ok)")
    click.echo(f"  created    {card.created}")
    click.echo(f"  input      {card.inputs.window} rows x {', '.join(card.inputs.metrics)}")
    click.echo(f"  score      {card.score}")
    click.echo(f"  quantised  {card.quantization or 'no (float32)'}")
    click.echo(f"  figures    {_figures(card)}")
    click.echo(f"  trained    {card.training.command} ({card.training.samples} readings)")
    click.echo(f"  held out   {card.training.evaluation}")


@models_group.command("bench")
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rounds", type=click.IntRange(min=1), default=40, show_default=True)
def bench_command(model: Path | None, rounds: int) -> None:
    """Time OnnxScorer.score against a bare onnxruntime run of MODEL (default: shipped)."""
    timing = measure(model, rounds=rounds)
    click.echo(f"bare InferenceSession.run   {timing.bare_us:7.2f} us")
    click.echo(f"score(deque of row tuples)  {timing.score_us:7.2f} us  ({timing.ratio:.2f}x bare)")
    click.echo(
        f"score(float32 array)        {timing.score_array_us:7.2f} us  "
        f"({timing.score_array_us / timing.bare_us:.2f}x bare)"
    )
