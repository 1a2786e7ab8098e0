"""footprint: `baton edge run`'s memory idle (rules-only, with the ONNX model) and under
load, and its start-up time to ready, as a child process the way systemd starts it.

Ready is the daemon's "ready" log line (it comes after ingest subscribed; /healthz says
ok from then on). The reference is the floor any Python gateway daemon starts from: an
interpreter with nats-py connected to the same leaf. Starts alternate between the kinds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from shared.bench.context import Context
from shared.bench.harness.broker import topology
from shared.bench.harness.child import Child, python_module
from shared.bench.harness.edge import EdgeProcess, EdgeSpec, write_edge_config
from shared.bench.harness.sim import Sim
from shared.bench.row import Goal, Row
from shared.bench.stats import Summary
from shared.natsrun import LocalTopology

name = "footprint"
title = "daemon RSS idle / with ONNX / under load, start-up time to ready"

KINDS: dict[str, tuple[Mapping[str, Any], ...]] = {
    "rules-only": (),
    # The shipped model as a user configures it: its card's threshold.
    "with ONNX model": ({"name": "bearing", "dclass": "pump"},),
}
RSS_GOALS = {"rules-only": 50.0, "with ONNX model": 90.0}
READY_GOAL = Goal("median", "<=", 1.0, "s")
LOAD_DEVICES = 50
REFERENCE = "python + nats-py connected, idle"


async def run(ctx: Context) -> list[Row]:
    async with topology(ctx.scratch("nats")) as topo:
        starts = await _starts(ctx, topo)
        peak, rate = await _under_load(ctx, topo)
    floor_rss, floor_ready = Summary.of(starts["floor"][0]), Summary.of(starts["floor"][1])
    rows = []
    for kind in KINDS:
        rss, ready = Summary.of(starts[kind][0]), Summary.of(starts[kind][1])
        rows.append(
            Row(
                f"daemon RSS idle, {kind}",
                "MB",
                rss.median,
                rss.p99,
                reference=REFERENCE,
                ref_median=floor_rss.median,
                ref_p99=floor_rss.p99,
                goals=(Goal("median", "<=", RSS_GOALS[kind], "MB"),),
                samples=rss.count,
            )
        )
        rows.append(
            Row(
                f"start-up to ready, {kind}",
                "s",
                ready.median,
                ready.p99,
                reference=REFERENCE,
                ref_median=floor_ready.median,
                ref_p99=floor_ready.p99,
                goals=(READY_GOAL,),
                samples=ready.count,
                note=_uptime_note(starts, kind),
            )
        )
    idle = Summary.of(starts["rules-only"][0]).median
    rows.append(
        Row(
            "daemon peak RSS under load, rules-only",
            "MB",
            peak,
            None,
            reference="the same daemon idle",
            ref_median=idle,
            note=f"{rate:,.0f} readings/s offered by baton sim run, durable uplink on",
        )
    )
    return rows


def _uptime_note(starts: dict[str, tuple[list[float], list[float], list[float]]], kind: str) -> str:
    uptimes = starts[kind][2]
    if not uptimes:
        return ""
    return f"the daemon's own figure (exec → ready): median {Summary.of(uptimes).median:.2f} s"


async def _starts(
    ctx: Context, topo: LocalTopology
) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Per kind: (RSS MB, seconds to ready, the daemon's own exec → ready figure)."""
    rounds = ctx.pick(quick=1, full=5)
    settle = ctx.pick(quick=0.5, full=3.0)
    kinds = [*KINDS, "floor"]
    out: dict[str, tuple[list[float], list[float], list[float]]] = {k: ([], [], []) for k in kinds}
    for i in range(rounds):
        for kind in kinds if i % 2 == 0 else reversed(kinds):
            rss, ready, uptime = await _start_once(ctx, topo, kind, i, settle)
            out[kind][0].append(rss)
            out[kind][1].append(ready)
            if uptime is not None:
                out[kind][2].append(uptime)
        ctx.say(
            f"round {i + 1}/{rounds}: "
            + ", ".join(f"{k} {out[k][0][-1]:.0f} MB / {out[k][1][-1]:.2f} s" for k in kinds)
        )
    return out


async def _start_once(
    ctx: Context, topo: LocalTopology, kind: str, i: int, settle: float
) -> tuple[float, float, float | None]:
    folder = ctx.scratch(f"{kind}-{i}")
    if kind == "floor":
        argv = python_module("shared.bench.harness.floor", topo.leaf.client_url)
        async with Child(argv, folder / "floor.log") as floor:
            await floor.wait_for(lambda line: line == "ready", 60.0)
            ready_s = floor.since_start()
            await asyncio.sleep(settle)  # idle is what is measured
            return floor.memory_mb()[0], ready_s, None
    spec = EdgeSpec(nats_url=topo.leaf.client_url, state_dir=folder / "state", models=KINDS[kind])
    async with EdgeProcess(write_edge_config(folder, spec), folder / "edge.log") as edge:
        await asyncio.sleep(settle)  # idle is what is measured
        return edge.memory_mb()[0], edge.ready_s, edge.uptime_ready_s


async def _under_load(ctx: Context, topo: LocalTopology) -> tuple[float, float]:
    """(peak RSS MB, offered readings/s) of a rules-only daemon fed by the simulator."""
    assert topo.leaf.mqtt_url is not None
    folder = ctx.scratch("load")
    rate, duration = ctx.pick(quick=1_000.0, full=8_000.0), ctx.pick(quick=2.0, full=15.0)
    spec = EdgeSpec(nats_url=topo.leaf.client_url, state_dir=folder / "state")
    async with EdgeProcess(write_edge_config(folder, spec), folder / "edge.log") as edge:
        sim = Sim(
            folder,
            topo.leaf.mqtt_url,
            devices=LOAD_DEVICES,
            rate_hz=rate / LOAD_DEVICES,
            duration_s=duration,
        )
        try:
            await sim.start()
            result = await sim.finish()
        finally:
            await sim.stop()
        await asyncio.sleep(1.0)  # the backlog it still holds counts too
        _, peak = edge.memory_mb()
    ctx.say(f"under load: {result.rate:,.0f} readings/s offered, peak RSS {peak:.0f} MB")
    return peak, result.rate
