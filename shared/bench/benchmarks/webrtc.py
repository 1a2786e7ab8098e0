"""webrtc: the session's live event stream over its WebRTC data channel vs a bare aiortc
data channel on the same machine: per-message latency and MB/s.

Measured by `shared.session.bench`, the session engineer's functions.
"""

from __future__ import annotations

from shared.bench.benchmarks._session import measuring_function
from shared.bench.context import Context
from shared.bench.row import Goal, Row

name = "webrtc"
title = "session stream over the WebRTC data channel vs a bare aiortc channel"

GOALS = (Goal("ratio", "<=", 1.3),)


async def run(ctx: Context) -> list[Row]:
    measure = measuring_function("measure_webrtc")
    result = await measure(rounds=ctx.pick(quick=2, full=10))
    return [
        Row(
            "session stream message latency",
            "ms",
            result["median_ms"],
            result["p99_ms"],
            reference="bare aiortc data channel",
            ref_median=result["bare_median_ms"],
            ref_p99=result["bare_p99_ms"],
            goals=GOALS,
        )
    ]
