"""Run the chosen benchmarks one after another, each against its own reference.

A benchmark is a module with `name`, `title` and `async def run(ctx) -> list[Row]` (see
`shared.bench.benchmarks`). One that cannot run here raises `Skip(reason)`; one that
breaks is recorded as failed with its error, and the next one still runs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.bench.context import Context
from shared.bench.row import Row
from shared.compat import timeout

log = logging.getLogger(__name__)

# The order of the issue: the hot path first, the peer last (it may need a download).
ORDER = ("reflex", "ingest", "drain", "onnx", "llm", "handoff", "webrtc", "footprint", "peer")
# A benchmark stuck on a dead child process must not hang the run.
QUICK_LIMIT_S = 150.0
FULL_LIMIT_S = 3600.0

Status = Literal["ok", "skipped", "failed"]


class Skip(Exception):
    """Raised by a benchmark that cannot run on this machine; the message says why."""


class Benchmark(Protocol):
    name: str
    title: str

    async def run(self, ctx: Context) -> list[Row]: ...


@dataclass(frozen=True, slots=True)
class BenchResult:
    name: str
    title: str
    status: Status
    seconds: float
    rows: tuple[Row, ...] = ()
    reason: str | None = None
    """Why it was skipped or how it failed."""


def load(name: str) -> Benchmark:
    if name not in ORDER:
        raise ValueError(f"no benchmark {name!r}; choose from {', '.join(ORDER)}")
    module: Benchmark = importlib.import_module(f"shared.bench.benchmarks.{name}")
    return module


def select(only: str | None) -> list[str]:
    """`--only a,b` in the canonical order; ValueError naming an unknown one."""
    if not only:
        return list(ORDER)
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in ORDER]
    if unknown:
        raise ValueError(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}"
        )
    return [n for n in ORDER if n in wanted]


async def run_benchmarks(ctx: Context, names: Sequence[str]) -> list[BenchResult]:
    results = []
    for i, name in enumerate(names, 1):
        ctx.current = name
        ctx.echo(f"── [{i}/{len(names)}] {name}")
        result = await run_one(ctx, load(name))
        ctx.say(
            f"{result.status} in {result.seconds:.1f} s"
            + (f": {result.reason}" if result.reason else "")
        )
        results.append(result)
    ctx.current = ""
    return results


async def run_one(ctx: Context, bench: Benchmark) -> BenchResult:
    started = time.monotonic()
    limit = ctx.pick(quick=QUICK_LIMIT_S, full=FULL_LIMIT_S)

    def done(status: Status, rows: Sequence[Row] = (), reason: str | None = None) -> BenchResult:
        return BenchResult(
            bench.name, bench.title, status, time.monotonic() - started, tuple(rows), reason
        )

    try:
        async with timeout(limit):
            rows = await bench.run(ctx)
    except Skip as exc:
        return done("skipped", reason=str(exc))
    except asyncio.TimeoutError:
        return done("failed", reason=f"did not finish in {limit:.0f} s")
    except Exception as exc:
        ctx.echo(traceback.format_exc().rstrip())
        return done("failed", reason=f"{type(exc).__name__}: {exc}")
    return done("ok", rows)
