"""One `baton bench` run: the machine, the benchmarks in order, the reports and plots.

    results = asyncio.run(run_suite(["reflex", "onnx"], out=Path("bench"), quick=True))

Scratch (stores, configs, child logs) lives in `OUT/work` and is removed after a run
in which nothing failed; after a failure (or with `keep=True`) it stays.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from shared.bench import machine, plots
from shared.bench.context import Context
from shared.bench.report import Results, write_json, write_markdown
from shared.bench.runner import run_benchmarks

CACHE_ENV = "BATON_BENCH_CACHE"


def cache_dir() -> Path:
    """Where downloads (Node-RED) are kept: $BATON_BENCH_CACHE, else ~/.cache/baton/bench."""
    if env := os.environ.get(CACHE_ENV):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "baton" / "bench"


def _fresh_work_dir(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return work


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def run_suite(
    names: Sequence[str],
    *,
    out: Path,
    quick: bool = False,
    model: Path | None = None,
    echo: Callable[[str], None] = _stderr,
    command: str = "baton bench",
    keep: bool = False,
) -> Results:
    work = await asyncio.to_thread(_fresh_work_dir, out)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    about = await asyncio.to_thread(machine.describe)
    echo(
        f"baton bench: {len(names)} benchmark(s), {'quick' if quick else 'full'} run, "
        f"{about['cpu']} x{about['cores']}, load {about['load_avg_start'][0]:.1f}"
    )
    ctx = Context(work=work, quick=quick, model=model, cache=cache_dir(), echo=echo)
    benchmarks = await run_benchmarks(ctx, names)
    about["load_avg_end"] = machine.load_avg()
    results = Results(started, time.monotonic() - t0, quick, command, about, benchmarks)
    _write(results, ctx, out, echo)
    if keep or any(b.status == "failed" for b in benchmarks):
        echo(f"kept the run's logs, configs and stores in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _write(results: Results, ctx: Context, out: Path, echo: Callable[[str], None]) -> None:
    write_json(results, out / "results.json")
    write_markdown(results, out / "results.md")
    plots.write_series(ctx.latencies, ctx.rates, out / "series.json")
    if plots.available():
        drawn = plots.write_plots(ctx.latencies, ctx.rates, out)
        echo(f"wrote {out / 'results.json'}, {out / 'results.md'} and {len(drawn)} plot(s)")
    else:
        echo(
            f"wrote {out / 'results.json'} and {out / 'results.md'}; no plots: "
            "matplotlib is not installed (pip install 'baton[bench]')"
        )
