"""ingest: the highest reading rate `baton edge run` sustains with its reflex rules and the
durable uplink, until loss or lag appears, vs the simulator's raw publish rate.

A ramp of steps: `baton sim run` offers a rate for a few seconds; a step holds when the
simulator reached ~the rate, the daemon processed every reading and the hub's FLEET
stream holds every one, each within LAG_LIMIT_S of the simulator's last publish. The
reference is the simulator alone publishing as fast as it can to the same leaf, before
the ramp and after it (A B A), with the UPLINK stream removed both times: the leaf stores
nothing then, and the ramp starts with an empty backlog (the stream exists with the leaf,
so a reference run would otherwise leave the daemon 100,000 readings to drain first).

The leaf's own ceiling is in the note: the simulator publishing with QoS 1 into the leaf
with its UPLINK stream and no daemon, counted when the stream holds every reading. With
`sync_interval: always` that is the disk's rate, and no daemon can forward more than
the leaf stores.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from nats.js import JetStreamContext

from shared import subjects
from shared.bench.context import Context
from shared.bench.harness.broker import GATEWAY, delete_uplink, topology
from shared.bench.harness.edge import EdgeProcess, EdgeSpec, write_edge_config
from shared.bench.harness.hub import FleetCounter
from shared.bench.harness.sim import MAX_RATE_HZ, Sim, SimRun
from shared.bench.row import Goal, Row
from shared.bench.stats import percentile
from shared.natsrun import LocalTopology

name = "ingest"
title = "sustained readings/s with reflex + durable uplink vs the simulator's raw rate"

GOALS = (Goal("median", ">=", 12_000, "readings/s"),)
DEVICES = 50
LAG_LIMIT_S = 1.0  # caught up this soon after the last publish, or the step lags
SETTLE_S = 30.0  # how long a lagging step gets to tell lag from loss
REACHED = 0.9  # the simulator offered at least this share of the step's rate
SAMPLE_S = 0.5
OK = "baton_edge_readings_total"


@dataclass(frozen=True, slots=True)
class Step:
    target: float
    offered: float
    sent: int
    lost: int
    catch_up_s: float

    @property
    def held(self) -> bool:
        return (
            self.lost == 0
            and self.catch_up_s <= LAG_LIMIT_S
            and self.offered >= REACHED * self.target
        )

    def describe(self) -> str:
        text = (
            f"{self.target:,.0f}/s asked, {self.offered:,.0f}/s offered, {self.lost} lost, "
            f"caught up {self.catch_up_s:.1f} s after"
        )
        if self.offered < REACHED * self.target:
            text += " (the simulator could not offer the rate: its ceiling, not the daemon's)"
        return text


# The leaf and hub with `sync_interval: always` (DESIGN: where a loss would matter), then
# with nats-server's default interval: on a disk with ~1 ms fsyncs the first is bound by
# the disk, the second shows what the daemon and the uplink do themselves.
VARIANTS = (("fsync always", True), ("default fsync interval", False))


async def run(ctx: Context) -> list[Row]:
    variants = VARIANTS[:1] if ctx.quick else VARIANTS
    return [await _variant(ctx, label, sync) for label, sync in variants]


async def _variant(ctx: Context, label: str, sync_always: bool) -> Row:
    ctx.say(f"{label}: leaf and hub with sync_interval {'always' if sync_always else 'default'}")
    async with topology(ctx.scratch(f"nats-{label}"), sync_always=sync_always) as topo:
        assert topo.leaf.mqtt_url is not None
        ceiling = await _ceiling(ctx, topo, label)
        await delete_uplink(topo.leaf.client_url, GATEWAY)  # the daemon makes it again
        raws = [await _raw(ctx, topo.leaf.mqtt_url, f"{label}: raw before")]
        steps, hwm = await _ramp(ctx, topo, label, _targets(ctx, sync_always))
        await delete_uplink(topo.leaf.client_url, GATEWAY)
        raws.append(await _raw(ctx, topo.leaf.mqtt_url, f"{label}: raw after"))
    held = [s for s in steps if s.held]
    best = max((s.offered for s in held), default=0.0)
    failed = next((s for s in steps if not s.held), None)
    note = f"{label}: steps held {len(held)}/{len(steps)}"
    last = f"; the ramp ended at {steps[-1].target:,.0f}/s with every step held" if steps else ""
    note += f"; first step not held: {failed.describe()}" if failed else last
    note += (
        f"; leaf store ceiling (sim QoS 1, UPLINK stored, no daemon) {ceiling:,.0f}/s"
        f"; raw runs {', '.join(f'{r.rate:,.0f}' for r in raws)}/s; daemon peak RSS {hwm:.0f} MB"
    )
    return Row(
        f"ingest, reflex + durable uplink, 0 lost, {label}",
        "readings/s",
        best,
        None,
        reference="baton sim run alone, same leaf",
        ref_median=percentile([r.rate for r in raws], 50),
        goals=GOALS,
        samples=len(steps),
        note=note,
    )


async def _raw(ctx: Context, broker: str, label: str) -> SimRun:
    total = ctx.pick(quick=5_000, full=100_000)
    sim = Sim(
        ctx.scratch(label),
        broker,
        devices=DEVICES,
        rate_hz=MAX_RATE_HZ,
        duration_s=total / (DEVICES * MAX_RATE_HZ),
    )
    try:
        await sim.start()
        result = await sim.finish()
    finally:
        await sim.stop()
    ctx.say(f"{label}: the simulator alone sent {result.sent:,} at {result.rate:,.0f}/s")
    return result


async def _ceiling(ctx: Context, topo: LocalTopology, label: str) -> float:
    """Readings/s the leaf stores in UPLINK alone: QoS 1 from the simulator, timed until
    the stream holds every one (nats-server PUBACKs before the store has written)."""
    import nats

    assert topo.leaf.mqtt_url is not None
    total = ctx.pick(quick=5_000, full=40_000)
    sim = Sim(
        ctx.scratch(f"{label}: ceiling"),
        topo.leaf.mqtt_url,
        devices=DEVICES,
        rate_hz=MAX_RATE_HZ,
        duration_s=total / (DEVICES * MAX_RATE_HZ),
        qos=1,
    )
    nc = await nats.connect(topo.leaf.client_url)
    leaf = nc.jetstream(domain=subjects.gateway_domain(GATEWAY))
    try:
        await sim.start()
        result = await sim.finish()
        ended = time.perf_counter()
        while True:
            if await _stored(leaf) >= result.sent or time.perf_counter() - ended > SETTLE_S:
                break
            await asyncio.sleep(0.05)  # a stopwatch on the stream's count
        # Its publishing time, then the store's lag behind it once it had sent the last.
        rate = result.sent / (result.elapsed_s + time.perf_counter() - ended)
    finally:
        await sim.stop()
        await nc.close()
    ctx.say(f"{label}: the leaf alone stored {result.sent:,} QoS 1 readings at {rate:,.0f}/s")
    return rate


async def _stored(leaf: JetStreamContext) -> int:
    info = await leaf.stream_info(subjects.UPLINK_STREAM, subjects_filter="baton.d.*.r")
    return sum((info.state.subjects or {}).values())


def _targets(ctx: Context, sync_always: bool) -> list[float]:
    full = [2_000.0, 4_000.0, 6_000.0, 8_000.0, 10_000.0, 12_000.0, 14_000.0, 16_000.0, 20_000.0]
    if sync_always:
        # The disk's ceiling is a few thousand a second here: finer steps below it.
        full = [1_000.0, 2_000.0, 3_000.0, *full[1:]]
    return ctx.pick(quick=[500.0], full=full)


async def _ramp(
    ctx: Context, topo: LocalTopology, label: str, targets: list[float]
) -> tuple[list[Step], float]:
    folder = ctx.scratch(f"daemon-{label}".replace(" ", "-"))
    spec = EdgeSpec(nats_url=topo.leaf.client_url, state_dir=folder / "state")
    steps: list[Step] = []
    async with (
        EdgeProcess(write_edge_config(folder, spec), folder / "edge.log") as edge,
        FleetCounter(topo.hub.client_url, GATEWAY) as hub,
    ):
        ctx.say(f"daemon ready in {edge.ready_s:.2f} s")
        sampler = Sampler(edge, hub)
        for target in targets:
            step = await _step(ctx, topo, edge, hub, sampler, target, folder)
            steps.append(step)
            ctx.say(f"step {'held' if step.held else 'NOT held'}: {step.describe()}")
            if not step.held:
                break
        ctx.rate(f"daemon processed, {label}", sampler.rates("daemon"))
        ctx.rate(f"hub received (FLEET), {label}", sampler.rates("hub"))
        _, hwm = edge.memory_mb()
    return steps, hwm


async def _step(
    ctx: Context,
    topo: LocalTopology,
    edge: EdgeProcess,
    hub: FleetCounter,
    sampler: Sampler,
    target: float,
    folder: Path,
) -> Step:
    assert topo.leaf.mqtt_url is not None
    duration = ctx.pick(quick=2.0, full=8.0)
    before = await edge.counter(OK, result="ok"), await hub.count()
    sim = Sim(
        folder / f"step-{target:.0f}",
        topo.leaf.mqtt_url,
        devices=DEVICES,
        rate_hz=target / DEVICES,
        duration_s=duration,
    )
    try:
        await sim.start()
        async with sampler.running():
            result = await sim.finish()
            ended = time.perf_counter()
            catch_up, seen = await _catch_up(edge, hub, before, result.sent, ended)
    finally:
        await sim.stop()
    return Step(target, result.rate, result.sent, max(0, result.sent - seen), catch_up)


async def _catch_up(
    edge: EdgeProcess, hub: FleetCounter, before: tuple[float, int], sent: int, ended: float
) -> tuple[float, int]:
    """(seconds after the last publish until both counts reached `sent`, the smaller count)."""
    while True:
        daemon = int(await edge.counter(OK, result="ok") - before[0])
        fleet = await hub.count() - before[1]
        waited = time.perf_counter() - ended
        if min(daemon, fleet) >= sent or waited > SETTLE_S:
            return waited, min(daemon, fleet)
        await asyncio.sleep(0.05)  # a stopwatch reading two counters, not a wait for state


class Sampler:
    """Counts of the daemon and the hub every SAMPLE_S while a step runs: the rate plot."""

    def __init__(self, edge: EdgeProcess, hub: FleetCounter) -> None:
        self._edge = edge
        self._hub = hub
        self._t0 = time.perf_counter()
        self.samples: list[tuple[float, float, int]] = []

    def running(self) -> _Running:
        return _Running(self)

    async def loop(self) -> None:
        while True:
            daemon = await self._edge.counter(OK, result="ok")
            fleet = await self._hub.count()
            self.samples.append((time.perf_counter() - self._t0, daemon, fleet))
            await asyncio.sleep(SAMPLE_S)  # a periodic sample, not a wait for state

    def rates(self, which: str) -> list[tuple[float, float]]:
        out = []
        col = 1 if which == "daemon" else 2
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            dt = b[0] - a[0]
            if dt > 0 and dt < 3 * SAMPLE_S:  # across a pause between steps: no point
                out.append((b[0], (b[col] - a[col]) / dt))
        return out


class _Running:
    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        self._task = asyncio.create_task(self._sampler.loop(), name="bench-ingest-sampler")

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
