"""reflex: a device publishes a reading over the limit and waits for its actuator command.

baton: device → leaf MQTT listener → `baton edge run` (core subscription, rule, publish)
→ leaf → the device's command topic. Bare: the same device, the same broker, a minimal
paho echo process that sends each reading back on the command topic (the reference of
the goals); and a minimal nats-py echo on the leaf's subjects, which shows how much of
the distance is the Python NATS client rather than baton. They alternate in blocks
(ABC CBA), rules-only and then with the ONNX model scoring every reading; then the
rules-only daemon once more with its uplink off, reported in a note of the rules-only
row: how much of the round trip the durable uplink costs on the same gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from shared.bench.context import Arm, Context, alternate
from shared.bench.harness.broker import topology
from shared.bench.harness.child import Child, python_module
from shared.bench.harness.edge import (
    EVERY_READING_RULE,
    SCORING_MODEL,
    EdgeProcess,
    EdgeSpec,
    write_edge_config,
)
from shared.bench.harness.mqtt import MqttDevice
from shared.bench.row import TIMES, Goal, Row
from shared.bench.stats import Summary

name = "reflex"
title = "reading → command round trip through baton edge run, vs a bare paho echo"

DEVICE = "probe-1"
DAEMON_TOPIC = f"baton/d/{DEVICE}/r"
ECHO_PREFIX = "bench/echo"
ECHO_TOPIC = f"{ECHO_PREFIX}/{DEVICE}/r"
NATS_ECHO_PREFIX = "bench/nats"
NATS_ECHO_TOPIC = f"{NATS_ECHO_PREFIX}/{DEVICE}/r"
COMMANDS = [
    f"baton/d/{DEVICE}/cmd",
    f"{ECHO_PREFIX}/{DEVICE}/cmd",
    f"{NATS_ECHO_PREFIX}/{DEVICE}/cmd",
]
TOPICS = {"baton": DAEMON_TOPIC, "bare": ECHO_TOPIC, "nats-py": NATS_ECHO_TOPIC}
ANSWER_TIMEOUT_S = 2.0
GOALS = (Goal("ratio", "<=", 1.5), Goal("ratio_p99", "<=", 2.0))
VARIANTS: tuple[tuple[str, tuple[Mapping[str, Any], ...]], ...] = (
    ("rules-only", ()),
    ("with ONNX model", (SCORING_MODEL,)),
)
# Not a row: the rules-only daemon with `[uplink] enabled = false`. Its forwarder shares
# the daemon's loop, and the leaf and the hub fsync every reading and decision it moves;
# the difference to the rules-only row is what that costs the round trip here.
NO_UPLINK = "rules-only, uplink off"


def probe_payloads(count: int, first_seq: int = 1, *, json: bool = False) -> list[bytes]:
    """Pump readings over the limit (temp_c 80 > 50), msgpack or JSON."""
    from shared.codec import encode, encode_json
    from shared.messages import Reading, now_ms

    enc = encode_json if json else encode
    metrics = {"temp_c": 80.0, "vib_rms": 1.4, "current_a": 9.5}
    return [
        enc(Reading(device=DEVICE, seq=seq, ts_ms=now_ms(), metrics=metrics, dclass="pump"))
        for seq in range(first_seq, first_seq + count)
    ]


@asynccontextmanager
async def bare_echo(ctx: Context, mqtt_url: str) -> AsyncIterator[Child]:
    argv = python_module("shared.bench.harness.echo", mqtt_url, f"{ECHO_PREFIX}/+/r")
    async with Child(argv, ctx.scratch("echo") / "echo.log") as echo:
        await echo.wait_for(lambda line: line == "ready", 30.0)
        yield echo


@asynccontextmanager
async def nats_echo(ctx: Context, nats_url: str) -> AsyncIterator[Child]:
    pattern = NATS_ECHO_PREFIX.replace("/", ".") + ".*.r"
    argv = python_module("shared.bench.harness.natsecho", nats_url, pattern)
    async with Child(argv, ctx.scratch("natsecho") / "natsecho.log") as echo:
        await echo.wait_for(lambda line: line == "ready", 30.0)
        yield echo


@asynccontextmanager
async def device(mqtt_url: str, commands: Sequence[str]) -> AsyncIterator[MqttDevice]:
    dev = await asyncio.to_thread(MqttDevice(mqtt_url, "bench-probe", commands).open)
    try:
        yield dev
    finally:
        await asyncio.to_thread(dev.close)


async def run(ctx: Context) -> list[Row]:
    rows = []
    async with topology(ctx.scratch("nats")) as topo:
        assert topo.leaf.mqtt_url is not None
        async with (
            bare_echo(ctx, topo.leaf.mqtt_url),
            nats_echo(ctx, topo.leaf.client_url),
        ):
            for label, models in VARIANTS:
                spec = _spec(ctx, topo.leaf.client_url, label, models)
                rows.append(_row(label, await _variant(ctx, topo.leaf.mqtt_url, label, spec)))
            spec = _spec(ctx, topo.leaf.client_url, NO_UPLINK, (), uplink=False)
            no_uplink = await _variant(ctx, topo.leaf.mqtt_url, NO_UPLINK, spec)
    rows[0] = replace(rows[0], note=f"{rows[0].note}; {_uplink_note(no_uplink)}")
    return rows


def _spec(
    ctx: Context,
    nats_url: str,
    label: str,
    models: Sequence[Mapping[str, Any]],
    *,
    uplink: bool = True,
) -> EdgeSpec:
    return EdgeSpec(
        nats_url=nats_url,
        state_dir=ctx.scratch(label) / "state",
        rules=[EVERY_READING_RULE],
        models=models,
        uplink=uplink,
    )


Measured = tuple[dict[str, Summary], dict[str, int]]


async def _variant(ctx: Context, mqtt_url: str, label: str, spec: EdgeSpec) -> Measured:
    folder = ctx.scratch(label)
    async with EdgeProcess(write_edge_config(folder, spec), folder / "edge.log") as edge:
        ctx.say(f"{label}: daemon ready in {edge.ready_s:.2f} s")
        async with device(mqtt_url, COMMANDS) as dev:
            samples, lost = await _measure(ctx, dev, label)
    ctx.latency(f"baton {label}", samples["baton"])
    ctx.latency(f"bare paho echo ({label} run)", samples["bare"])
    ctx.latency(f"bare nats-py echo ({label} run)", samples["nats-py"])
    return {arm: Summary.of(samples[arm]) for arm in TOPICS}, lost


def _row(label: str, measured: Measured) -> Row:
    summaries, lost = measured
    baton, bare, nats = (summaries[arm] for arm in TOPICS)
    notes = [
        f"bare nats-py echo on the leaf's subjects: {nats.median:.3f} / {nats.p99:.2f} ms"
        f" ({_ratios(nats, bare)} the paho echo)"
    ]
    notes += [f"{n} unanswered ({arm})" for arm, n in lost.items() if n]
    return Row(
        f"reflex round trip, {label}",
        "ms",
        baton.median,
        baton.p99,
        reference="bare paho echo, same broker",
        ref_median=bare.median,
        ref_p99=bare.p99,
        goals=GOALS,
        samples=baton.count,
        note="; ".join(notes),
    )


def _uplink_note(measured: Measured) -> str:
    summaries, lost = measured
    baton, bare = summaries["baton"], summaries["bare"]
    unanswered = sum(lost.values())
    return (
        f"{NO_UPLINK}: {baton.median:.3f} / {baton.p99:.2f} ms against the paho echo's "
        f"{bare.median:.3f} / {bare.p99:.2f} ms in its own alternation, {_ratios(baton, bare)}"
        + (f" ({unanswered} unanswered)" if unanswered else "")
    )


def _ratios(a: Summary, b: Summary) -> str:
    return f"{a.median / b.median:.2f}{TIMES} / {a.p99 / b.p99:.2f}{TIMES}"


async def _measure(
    ctx: Context, dev: MqttDevice, label: str
) -> tuple[dict[str, list[float]], dict[str, int]]:
    rounds = ctx.pick(quick=2, full=10)
    block = ctx.pick(quick=15, full=200)
    warmup = ctx.pick(quick=20, full=100)  # fills the model's 16-reading window too
    first = [1]  # readings keep their per-device sequence across blocks
    lost = dict.fromkeys(TOPICS, 0)

    def arm(which: str, count: int) -> Arm:
        async def probe() -> list[float]:
            payloads = probe_payloads(count, first[0])
            first[0] += count
            topic = TOPICS[which]
            got, missed = await asyncio.to_thread(
                dev.round_trips, topic, payloads, ANSWER_TIMEOUT_S
            )
            lost[which] += missed
            return got

        return probe

    for which in TOPICS:
        await arm(which, warmup)()
    lost.update(dict.fromkeys(TOPICS, 0))
    ctx.say(f"{label}: {rounds} rounds of {block} probes per side, alternating")
    samples = await alternate(rounds, {which: arm(which, block) for which in TOPICS})
    return samples, lost
