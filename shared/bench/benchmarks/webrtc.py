"""webrtc: one event's trip over the session's live stream (the owner's runner → a
follower's feed over the WebRTC data channel, NATS signaling, the log appending
alongside) vs the same bytes on a bare aiortc data channel between two peer connections,
in the same run, one message in flight at a time, the two alternated ABBA.

Measured by the session engineer's `shared.session.bench.stream_latency` on a local hub.
"""

from __future__ import annotations

from shared.bench.benchmarks._session import measuring_function
from shared.bench.context import Context
from shared.bench.harness.broker import topology
from shared.bench.row import Goal, Row

name = "webrtc"
title = "session stream over the WebRTC data channel vs a bare aiortc channel"

GOALS = (Goal("ratio", "<=", 1.3),)


async def run(ctx: Context) -> list[Row]:
    measure = measuring_function("stream_latency")
    # Each event takes ~0.3 ms on each path: 2,000 of them a second or so, enough for a
    # median that a neighbour's burst of load does not move by more than a few percent.
    messages = ctx.pick(quick=30, full=2000)
    ctx.say(f"{messages} events, one at a time, on our stream and on a bare channel")
    async with topology(ctx.scratch("nats")) as topo:
        figures = await measure(topo.hub.client_url, messages=messages)
    ours, bare = figures.ours, figures.bare
    return [
        Row(
            f"session stream, one {figures.payload_bytes}-byte event",
            "ms",
            ours.p50_ms,
            ours.p99_ms,
            reference="bare aiortc data channel",
            ref_median=bare.p50_ms,
            ref_p99=bare.p99_ms,
            goals=GOALS,
            samples=ours.count,
            note="MB/s is not measured yet: stream_latency times one message in flight",
        )
    ]
