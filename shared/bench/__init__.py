"""`baton bench`: each benchmark against its reference, on one machine, in one run.

    baton bench [--quick] [--only NAME[,NAME]] [--out DIR] [--model GGUF]

    Row, Goal            one figure, its reference and the goals it is read against
    Context, alternate   what a benchmark gets; ABBA rounds of two arms
    Skip                 raised by a benchmark that cannot run here, with the reason
    run_suite            run benchmarks, write results.json / results.md / plots

A benchmark is a module of `shared.bench.benchmarks` with `name`, `title` and
`async def run(ctx) -> list[Row]`. Edge, cloud and firmware-sim run as child processes
(`baton edge run`, `baton sim run`) or are imported inside the benchmark that needs them.
"""

from shared.bench.context import Context, alternate
from shared.bench.row import Goal, Row
from shared.bench.runner import ORDER, BenchResult, Skip
from shared.bench.suite import run_suite

__all__ = ["ORDER", "BenchResult", "Context", "Goal", "Row", "Skip", "alternate", "run_suite"]
