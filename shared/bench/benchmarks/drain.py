"""drain: a backlog of readings at the leaf drained to the hub by the uplink, vs raw nats-py
JetStream publishing of the same messages from the same leaf connection.

The uplink engineer's own benchmark functions (`edge.uplink.bench.raw` / `drain`) do the
work; here they alternate (ABBA) for several rounds, the median of each side counts, and
both servers run with `sync_interval: always`, as a gateway does.
"""

from __future__ import annotations

from typing import Any

from shared.bench.context import Context
from shared.bench.harness.broker import topology
from shared.bench.row import Goal, Row
from shared.bench.stats import Summary

name = "drain"
title = "leaf backlog → hub through the uplink vs raw nats-py JetStream publishing"

GOALS = (Goal("ratio", ">=", 0.7),)


async def run(ctx: Context) -> list[Row]:
    import nats

    from edge.uplink import UplinkConfig
    from edge.uplink import bench as uplink_bench

    messages = ctx.pick(quick=2_000, full=200_000)
    rounds = ctx.pick(quick=1, full=2)  # 2 rounds: A B B A
    rates: dict[str, list[float]] = {"baton": [], "bare": []}
    cpu: dict[str, list[float]] = {"baton": [], "bare": []}
    async with topology(ctx.scratch("nats"), uplink_bench.GATEWAY) as topo:
        nc = await nats.connect(topo.leaf.client_url)
        try:
            for i in range(rounds):
                data = uplink_bench.readings(messages, first_seq=i * messages)
                for arm in ("baton", "bare") if i % 2 == 0 else ("bare", "baton"):
                    ctx.say(f"round {i + 1}/{rounds}: {arm}, {messages:,} messages")
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
    note = (
        f"{messages:,} readings per round, {rounds} round(s); client CPU per message "
        f"{Summary.of(cpu['baton']).median:.0f} µs (uplink) vs {Summary.of(cpu['bare']).median:.0f} µs (raw)"
    )
    return [
        Row(
            "uplink drain, leaf backlog → hub",
            "msgs/s",
            baton.median,
            None,
            reference="raw nats-py publish_async to the hub stream",
            ref_median=bare.median,
            goals=GOALS,
            samples=baton.count,
            note=note,
        )
    ]
