"""The benchmarks `baton bench` will call still run (figures are printed, not asserted)."""

from __future__ import annotations

import nats

from shared import streams
from shared.natsrun import NatsServer
from shared.session import bench


async def test_the_benchmarks_run_and_return_their_figures(hub: NatsServer) -> None:
    nc = await nats.connect(hub.client_url)
    await streams.ensure_hub(nc.jetstream(domain="hub"))
    await nc.close()
    handoffs = await bench.handoff_latency(hub.client_url, snapshot_bytes=300_000, count=4)
    assert handoffs.latency.count == 4 and handoffs.latency.p50_ms > 0
    assert set(handoffs.steps_p50_ms) == {"quiesce", "request", "snapshot", "prepare", "flip",
                                          "commit"}  # fmt: skip
    one_by_one = await bench.stream_latency(hub.client_url, messages=20)
    burst = await bench.stream_latency(hub.client_url, messages=50, burst=True)
    for figures in (one_by_one, burst):
        assert figures.ours.count == figures.bare.count and figures.ratio_p50 > 0
