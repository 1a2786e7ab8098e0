"""handoff: a session handed from the edge to the cloud, request → the new owner accepting
input, with a 64 KB and a 4 MB snapshot (absolute goals: there is no bare equivalent).

Measured by `shared.session.bench`, the session engineer's functions, on a local hub.
"""

from __future__ import annotations

from shared.bench.benchmarks._session import measuring_function
from shared.bench.context import Context
from shared.bench.row import Goal, Row

name = "handoff"
title = "session handoff, request → new owner accepting input (64 KB, 4 MB snapshots)"

GOALS = {
    64 * 1024: (Goal("median", "<=", 20.0, "ms"), Goal("p99", "<=", 100.0, "ms")),
    4 * 1024 * 1024: (Goal("median", "<=", 200.0, "ms"),),
}


async def run(ctx: Context) -> list[Row]:
    measure = measuring_function("measure_handoff")
    rows = []
    for size, goals in GOALS.items():
        label = f"{size // 1024} KB" if size < 1024 * 1024 else f"{size // (1024 * 1024)} MB"
        samples = await measure(size, rounds=ctx.pick(quick=3, full=30))
        rows.append(_row(ctx, label, list(samples), goals))
    return rows


def _row(ctx: Context, label: str, samples_ms: list[float], goals: tuple[Goal, ...]) -> Row:
    from shared.bench.stats import Summary

    stats = Summary.of(samples_ms)
    ctx.latency(f"handoff {label}", samples_ms)
    return Row(
        f"handoff, {label} snapshot",
        "ms",
        stats.median,
        stats.p99,
        goals=goals,
        samples=stats.count,
    )
