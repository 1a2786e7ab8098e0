"""peer: the reflex workload on Node-RED 4, next to `baton edge run`, on the same leaf.

Node-RED runs headless (editor and HTTP off) with mqtt in → function → mqtt out doing
the daemon's threshold (temp_c above 50 → a fan command). Both get the same JSON
readings from the same device connection and answer with a JSON command: a round trip
each, alternating in blocks, then a flood of readings each (QoS 0, as fast as paho
sends), counting the commands that come back. Start-up and memory are read on the way.
Rows are baton's figure with Node-RED's as the reference. Skipped, with the reason, when
npm or Node.js ≥ 18 is missing or the registry cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

from shared.bench.benchmarks.reflex import DEVICE, device, probe_payloads
from shared.bench.context import Arm, Context, alternate
from shared.bench.harness import nodered
from shared.bench.harness.broker import topology
from shared.bench.harness.child import Child
from shared.bench.harness.edge import EVERY_READING_RULE, EdgeProcess, EdgeSpec, write_edge_config
from shared.bench.harness.mqtt import Flood, MqttDevice
from shared.bench.row import Goal, Row
from shared.bench.runner import Skip
from shared.bench.stats import Summary

name = "peer"
title = "the reflex workload on Node-RED 4 (headless) on the same broker"

TOPICS = {"baton": f"baton/d/{DEVICE}/r", "node-red": f"{nodered.PREFIX}/{DEVICE}/r"}
COMMANDS = [f"baton/d/{DEVICE}/cmd", f"{nodered.PREFIX}/{DEVICE}/cmd"]
ANSWER_TIMEOUT_S = 2.0
FLOOD_IDLE_S = 5.0  # a flood ends when no command came for this long
REFERENCE = "Node-RED 4, same broker"


@dataclass
class Side:
    ready_s: float = 0.0
    idle_mb: float = 0.0
    after_mb: float = 0.0
    latencies: list[float] = field(default_factory=list)
    floods: list[Flood] = field(default_factory=list)


async def run(ctx: Context) -> list[Row]:
    if ctx.cache is None:
        raise Skip("no cache directory for the Node-RED install")
    try:
        red = await nodered.install(ctx.cache)
    except nodered.NodeRedUnavailable as exc:
        raise Skip(str(exc)) from exc
    version = _version(red)
    ctx.say(f"Node-RED {version} from {red.parent}")
    sides = {"baton": Side(), "node-red": Side()}
    async with topology(ctx.scratch("nats")) as topo:
        assert topo.leaf.mqtt_url is not None
        folder = ctx.scratch("daemon")
        spec = EdgeSpec(
            nats_url=topo.leaf.client_url,
            state_dir=folder / "state",
            rules=[EVERY_READING_RULE],
            command_format="json",
        )
        node_red = nodered.node_red_child(red, ctx.scratch("node-red"), topo.leaf.mqtt_url)
        async with EdgeProcess(write_edge_config(folder, spec), folder / "edge.log") as edge:
            try:
                sides["node-red"].ready_s = await nodered.start(node_red)
                sides["baton"].ready_s = edge.ready_s
                await _measure(ctx, topo.leaf.mqtt_url, edge, node_red, sides)
            finally:
                await node_red.stop()
    return _rows(sides, version)


def _version(red: Path) -> str:
    try:
        return str(json.loads((red.parent / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "4.x"


async def _measure(
    ctx: Context, mqtt_url: str, edge: EdgeProcess, node_red: Child, sides: dict[str, Side]
) -> None:
    await asyncio.sleep(ctx.pick(quick=0.5, full=3.0))  # idle is what is measured
    sides["baton"].idle_mb = edge.memory_mb()[0]
    sides["node-red"].idle_mb = node_red.memory_mb()[0]
    async with device(mqtt_url, COMMANDS) as dev:
        await _latency(ctx, dev, sides)
        await _floods(ctx, dev, sides)
    sides["baton"].after_mb = edge.memory_mb()[0]
    sides["node-red"].after_mb = node_red.memory_mb()[0]


async def _latency(ctx: Context, dev: MqttDevice, sides: dict[str, Side]) -> None:
    rounds, block = ctx.pick(quick=2, full=10), ctx.pick(quick=15, full=200)
    first = [1]

    def arm(side: str) -> Arm:
        async def probe() -> list[float]:
            payloads = probe_payloads(block, first[0], json=True)
            first[0] += block
            got, _ = await asyncio.to_thread(
                dev.round_trips, TOPICS[side], payloads, ANSWER_TIMEOUT_S
            )
            return got

        return probe

    await arm("baton")()  # warm-up, both sides
    await arm("node-red")()
    ctx.say(f"round trips: {rounds} rounds of {block} per side, alternating")
    samples = await alternate(rounds, {side: arm(side) for side in sides})
    for side, values in samples.items():
        sides[side].latencies = values
        ctx.latency(side, values)


async def _floods(ctx: Context, dev: MqttDevice, sides: dict[str, Side]) -> None:
    count, rounds = ctx.pick(quick=2_000, full=50_000), ctx.pick(quick=1, full=2)
    first = 1_000_000
    for i in range(rounds):
        for side in ("baton", "node-red") if i % 2 == 0 else ("node-red", "baton"):
            payloads = probe_payloads(count, first, json=True)
            first += count
            flood = await asyncio.to_thread(dev.flood, TOPICS[side], payloads, FLOOD_IDLE_S)
            sides[side].floods.append(flood)
            ctx.rate(f"{side} flood {i + 1}: commands/s", flood.per_second())
            ctx.say(
                f"flood {i + 1} {side}: {flood.received:,}/{flood.sent:,} commands back at {flood.rate:,.0f}/s"
            )


def _rows(sides: dict[str, Side], version: str) -> list[Row]:
    b, n = sides["baton"], sides["node-red"]
    lat_b, lat_n = Summary.of(b.latencies), Summary.of(n.latencies)
    flood_b = Summary.of([f.rate for f in b.floods])
    flood_n = Summary.of([f.rate for f in n.floods])
    ref = f"{REFERENCE} ({version})"
    lost = (
        f"commands missing after the floods: baton {sum(f.sent - f.received for f in b.floods)}, "
        f"Node-RED {sum(f.sent - f.received for f in n.floods)}"
    )
    return [
        Row(
            "reflex round trip vs Node-RED",
            "ms",
            lat_b.median,
            lat_b.p99,
            reference=ref,
            ref_median=lat_n.median,
            ref_p99=lat_n.p99,
            goals=(Goal("ratio_p99", "<=", 0.5),),
            samples=lat_b.count,
        ),
        Row(
            f"{b.floods[0].sent:,}-reading flood, commands back",
            "commands/s",
            flood_b.median,
            None,
            reference=ref,
            ref_median=flood_n.median,
            samples=flood_b.count,
            note=lost,
        ),
        Row("RSS idle vs Node-RED", "MB", b.idle_mb, None, reference=ref, ref_median=n.idle_mb),
        Row(
            "RSS after the floods vs Node-RED",
            "MB",
            b.after_mb,
            None,
            reference=ref,
            ref_median=n.after_mb,
        ),
        Row(
            "start to ready vs Node-RED",
            "s",
            b.ready_s,
            None,
            reference=ref,
            ref_median=n.ready_s,
            note="Node-RED: spawn → flows started and broker connected",
        ),
    ]
