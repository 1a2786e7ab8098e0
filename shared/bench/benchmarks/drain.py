"""drain: a backlog of readings at the leaf drained to the hub by the uplink, vs raw nats-py
JetStream publishing of the same messages from the same leaf connection.

The uplink engineer's own benchmark functions (`edge.uplink.bench.raw` / `drain`) do the
work; here they alternate (ABBA) for several rounds, the median of each side counts.
Two variants, like `ingest`: both servers with `sync_interval: always`, as a gateway
runs (the hub's fsync per stored message then bounds both sides: it compares what the
disk allows), and with nats-server's default interval, where both sides are bound by
this process's CPU (it compares what the uplink costs per message: receiving each one
from the leaf, routing it, publishing it, its PubAck, the local ack).
"""

from __future__ import annotations

from statistics import median
from typing import Any

from shared.bench.context import Context
from shared.bench.harness.broker import topology
from shared.bench.row import Goal, Row
from shared.bench.stats import Summary

name = "drain"
title = "leaf backlog → hub through the uplink vs raw nats-py JetStream publishing"

GOALS = (Goal("ratio", ">=", 0.7),)
# (label, sync_interval always, rounds of a full run): the CPU-bound variant is quick
# and noisier (a neighbour's burst is a larger share of a ten-second round), so it
# alternates more rounds.
VARIANTS = (("fsync always", True, 2), ("default fsync interval", False, 4))


async def run(ctx: Context) -> list[Row]:
    variants = VARIANTS[:1] if ctx.quick else VARIANTS
    return [await _variant(ctx, label, sync, rounds) for label, sync, rounds in variants]


async def _variant(ctx: Context, label: str, sync_always: bool, full_rounds: int) -> Row:
    import nats

    from edge.uplink import UplinkConfig
    from edge.uplink import bench as uplink_bench

    messages = ctx.pick(quick=2_000, full=200_000)
    rounds = ctx.pick(quick=1, full=full_rounds)  # A B, B A, ...
    rates: dict[str, list[float]] = {"baton": [], "bare": []}
    cpu: dict[str, list[float]] = {"baton": [], "bare": []}
    scratch = ctx.scratch(f"nats-{label}".replace(" ", "-"))
    async with topology(scratch, uplink_bench.GATEWAY, sync_always=sync_always) as topo:
        nc = await nats.connect(topo.leaf.client_url)
        try:
            for i in range(rounds):
                data = uplink_bench.readings(messages, first_seq=i * messages)
                for arm in ("baton", "bare") if i % 2 == 0 else ("bare", "baton"):
                    ctx.say(f"{label}, round {i + 1}/{rounds}: {arm}, {messages:,} messages")
                    timing: Any
                    if arm == "baton":
                        timing = await uplink_bench.drain(nc, data, UplinkConfig())
                    else:
                        timing = await uplink_bench.raw(nc, data, f"raw{i}")
                    rates[arm].append(messages / timing.wall_s)
                    cpu[arm].append(timing.cpu_s / messages * 1e6)
        finally:
            await nc.close()
    baton, bare = Summary.of(rates["baton"]), Summary.of(rates["bare"])
    paired = median(b / r for b, r in zip(rates["baton"], rates["bare"], strict=True))
    note = (
        f"{label}: {messages:,} readings per round, {rounds} round(s); median of the "
        f"per-round ratios {paired:.2f}x; client CPU per message "
        f"{Summary.of(cpu['baton']).median:.0f} µs (uplink) vs "
        f"{Summary.of(cpu['bare']).median:.0f} µs (raw)"
    )
    return Row(
        f"uplink drain, leaf backlog → hub, {label}",
        "msgs/s",
        baton.median,
        None,
        reference="raw nats-py publish_async to the hub stream",
        ref_median=bare.median,
        goals=GOALS,
        samples=baton.count,
        note=note,
    )
