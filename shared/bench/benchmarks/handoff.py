"""handoff: a session handed between the edge and the cloud, from the request to the new
owner accepting input, with a 64 KB and a 4 MB snapshot. There is no bare equivalent, so
the goals are absolute (p50 ≤ 20 ms and p99 ≤ 100 ms at 64 KB, p50 ≤ 200 ms at 4 MB).

Measured by the session engineer's `shared.session.bench.handoff_latency` on a local hub
and leaf: the edge side connects through its leaf, the cloud side to the hub, and the
session goes back and forth, each handoff timed by its own report.
"""

from __future__ import annotations

from typing import Any

from shared.bench.benchmarks._session import measuring_function
from shared.bench.context import Context
from shared.bench.harness.broker import topology
from shared.bench.row import Goal, Row

name = "handoff"
title = "session handoff, request → new owner accepting input (64 KB, 4 MB snapshots)"

KB, MB = 1024, 1024 * 1024
GOALS = {
    64 * KB: (Goal("median", "<=", 20.0, "ms"), Goal("p99", "<=", 100.0, "ms")),
    4 * MB: (Goal("median", "<=", 200.0, "ms"),),
}


async def run(ctx: Context) -> list[Row]:
    measure = measuring_function("handoff_latency")
    counts = {64 * KB: ctx.pick(quick=4, full=200), 4 * MB: ctx.pick(quick=2, full=20)}
    rows = []
    async with topology(ctx.scratch("nats")) as topo:
        for size, goals in GOALS.items():
            ctx.say(f"{counts[size]} handoffs with a {_label(size)} snapshot")
            figures = await measure(
                topo.hub.client_url, topo.leaf.client_url, snapshot_bytes=size, count=counts[size]
            )
            rows.append(_row(size, figures, goals))
    return rows


def _label(size: int) -> str:
    return f"{size // KB} KB" if size < MB else f"{size // MB} MB"


def _row(size: int, figures: Any, goals: tuple[Goal, ...]) -> Row:
    latency = figures.latency
    steps = ", ".join(f"{step} {ms:.1f}" for step, ms in figures.steps_p50_ms.items())
    return Row(
        f"handoff edge ⇄ cloud, {_label(size)} snapshot",
        "ms",
        latency.p50_ms,
        latency.p99_ms,
        goals=goals,
        samples=latency.count,
        note=f"p50 of each step, ms: {steps}" if steps else "",
    )
