"""footprint: `baton edge run`'s memory idle (rules-only, with the ONNX model) and under
load, and its start-up time to ready, as a child process the way systemd starts it.

Ready is the daemon's "ready" log line (it comes after ingest subscribed; /healthz says
ok from then on). Idle is what a gateway whose hub answers settles at: after ready the
daemon attaches in the background (session handoff: the hub's leases bucket answers,
it hosts agent sessions from then on), so RSS is read once /healthz says
`handoff: attached` with no session open, and a while after. The note gives what it had
at the ready line, as attaching begins (about what a gateway that has not reached its
hub keeps).

The reference is the floor any Python gateway daemon starts from: an interpreter with
nats-py connected to the same leaf and nothing else (`shared/bench/harness/floor.py`,
run as a script: `-m` would import the `shared` package first). Starts alternate
between the kinds.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.bench.context import Context
from shared.bench.harness import floor
from shared.bench.harness.broker import topology
from shared.bench.harness.child import Child, ChildError
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
# Attaching takes one JetStream request through the leaf and the protocol's imports
# (~0.3 s); this long means it failed.
ATTACH_TIMEOUT_S = 30.0
ATTACH_POLL_S = 0.05

# Per kind: RSS MB idle (attached), seconds to ready, the daemon's own exec → ready
# figure, RSS MB at the ready line.
Starts = dict[str, tuple[list[float], list[float], list[float], list[float]]]


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
                note=_attached_note(starts, kind),
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


def _uptime_note(starts: Starts, kind: str) -> str:
    uptimes = starts[kind][2]
    if not uptimes:
        return ""
    return f"the daemon's own figure (exec → ready): median {Summary.of(uptimes).median:.2f} s"


def _attached_note(starts: Starts, kind: str) -> str:
    at_ready = Summary.of(starts[kind][3]).median
    return (
        "session handoff attached (the hub answered), no session open; "
        f"at the ready line, as attaching begins: median {at_ready:.1f} MB"
    )


async def _starts(ctx: Context, topo: LocalTopology) -> Starts:
    rounds = ctx.pick(quick=1, full=5)
    settle = ctx.pick(quick=0.5, full=3.0)
    kinds = [*KINDS, "floor"]
    out: Starts = {k: ([], [], [], []) for k in kinds}
    for i in range(rounds):
        for kind in kinds if i % 2 == 0 else reversed(kinds):
            rss, ready, uptime, at_ready = await _start_once(ctx, topo, kind, i, settle)
            out[kind][0].append(rss)
            out[kind][1].append(ready)
            if uptime is not None:
                out[kind][2].append(uptime)
            out[kind][3].append(at_ready)
        ctx.say(
            f"round {i + 1}/{rounds}: "
            + ", ".join(f"{k} {out[k][0][-1]:.0f} MB / {out[k][1][-1]:.2f} s" for k in kinds)
        )
    return out


async def _start_once(
    ctx: Context, topo: LocalTopology, kind: str, i: int, settle: float
) -> tuple[float, float, float | None, float]:
    """(RSS MB idle, seconds to ready, the daemon's exec → ready, RSS MB at ready)."""
    folder = ctx.scratch(f"{kind}-{i}")
    if kind == "floor":
        argv = [sys.executable, str(Path(floor.__file__)), topo.leaf.client_url]
        async with Child(argv, folder / "floor.log") as child:
            await child.wait_for(lambda line: line == "ready", 60.0)
            ready_s = child.since_start()
            at_ready = child.memory_mb()[0]
            await asyncio.sleep(settle)  # idle is what is measured
            return child.memory_mb()[0], ready_s, None, at_ready
    spec = EdgeSpec(nats_url=topo.leaf.client_url, state_dir=folder / "state", models=KINDS[kind])
    async with EdgeProcess(write_edge_config(folder, spec), folder / "edge.log") as edge:
        at_ready = edge.memory_mb()[0]
        await _attached(edge)
        await asyncio.sleep(settle)  # idle is what is measured
        return edge.memory_mb()[0], edge.ready_s, edge.uptime_ready_s, at_ready


async def _attached(edge: EdgeProcess) -> None:
    """Return once /healthz says the daemon hosts sessions (none open yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ATTACH_TIMEOUT_S
    while True:
        _, body = await edge.get("/healthz")
        health = json.loads(body)
        if health.get("handoff") == "attached":
            if health.get("sessions"):
                raise ChildError(f"a session is open in an idle daemon: {health}")
            return
        if loop.time() > deadline:
            raise edge.child.error(f"did not attach in {ATTACH_TIMEOUT_S:.0f} s: {health}")
        # The daemon's state, not an event we can await: asked again shortly.
        await asyncio.sleep(ATTACH_POLL_S)


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
