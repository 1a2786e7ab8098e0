"""`baton bench`: baton's figures side by side with the bare libraries and a peer.

    baton bench [--quick] [--only NAME[,NAME]] [--out DIR] [--model GGUF]

Writes DIR/results.json, DIR/results.md (figure, median, p99, reference, ratio, goal,
met) and PNG plots when matplotlib is installed. Exit 0 when every benchmark ran or was
skipped with its reason (a missed goal is a finding, not an error); 1 when one failed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from shared.bench.runner import ORDER, select

EXIT_FAILED = 1


@click.command(name="bench")
@click.option(
    "--quick", is_flag=True, help="A few seconds each: a CI smoke run, timings not meaningful."
)
@click.option(
    "--only",
    metavar="NAME[,NAME]",
    default=None,
    help=f"Run only these, of: {', '.join(ORDER)}.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-results"),
    show_default=True,
    help="Directory for results.json, results.md and the plots.",
)
@click.option(
    "--model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="GGUF for the llm benchmark (default: a tiny generated one).",
)
@click.option("--keep", is_flag=True, help="Keep OUT/work: every child's log, config and store.")
def bench(quick: bool, only: str | None, out: Path, model: Path | None, keep: bool) -> None:
    """Run each benchmark against its reference on this machine, alternating A/B."""
    try:
        names = select(only)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--only") from exc
    from shared.bench.suite import run_suite

    command = _command_line(quick, only, out, model)
    results = asyncio.run(
        run_suite(names, out=out, quick=quick, model=model, command=command, keep=keep)
    )
    click.echo((out / "results.md").read_text(encoding="utf-8"))
    if any(b.status == "failed" for b in results.benchmarks):
        sys.exit(EXIT_FAILED)


def _command_line(quick: bool, only: str | None, out: Path, model: Path | None) -> str:
    """The run as a user would type it again (recorded in the results)."""
    parts = ["baton bench"]
    parts += ["--quick"] if quick else []
    parts += ["--only", only] if only else []
    parts += ["--out", str(out)]
    parts += ["--model", str(model)] if model else []
    return " ".join(parts)
