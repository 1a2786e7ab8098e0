"""Benchmark: how fast the forwarder drains a backlog, against raw nats-py publishing.

    python -m edge.uplink.bench [--messages 50000] [--no-sync] [--batch 512]

In one run, on one local hub + leaf (shared.natsrun): first nats-py publishes the
messages straight to the hub's FLEET stream from a leaf connection (`publish_async`,
`wait_stall=None`, Nats-Msg-Id set: the best a client does without a store in between);
then the same messages are put in the leaf's UPLINK store and an `Uplink` drains them.
The goal is a drain rate of at least 0.7x the raw rate. Both run `--rounds` times,
alternating, and the best of each is kept: on a shared machine the others' load is
noise. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import nats
from nats.aio.client import Client

from edge.uplink import Uplink, UplinkConfig
from shared import codec, streams, subjects
from shared.messages import Reading
from shared.natsrun import LocalTopology

GATEWAY = "bench"
DEVICES = 10
WINDOW = 4000  # nats-py's default cap on async publishes in flight


@dataclass(frozen=True, slots=True)
class Timing:
    wall_s: float
    cpu_s: float  # this process only: the servers run in their own


@dataclass(frozen=True, slots=True)
class Result:
    messages: int
    raw: Timing
    drain: Timing

    def report(self) -> str:
        n = self.messages
        raw, drain = n / self.raw.wall_s, n / self.drain.wall_s
        return (
            f"{n} messages: raw publish {raw:,.0f}/s ({self.raw.cpu_s / n * 1e6:.0f} µs CPU/msg), "
            f"uplink drain {drain:,.0f}/s ({self.drain.cpu_s / n * 1e6:.0f} µs CPU/msg), "
            f"ratio {drain / raw:.2f}"
        )


def readings(count: int, first_seq: int) -> list[tuple[str, int, bytes]]:
    out = []
    for i in range(count):
        device, seq = f"d{i % DEVICES}", first_seq + i // DEVICES
        r = Reading(device=device, seq=seq, ts_ms=1_700_000_000_000 + i, metrics={"t": 20.5})
        out.append((device, seq, codec.encode(r)))
    return out


async def publish_windowed(nc: Client, msgs: list[tuple[str, dict[str, str], bytes]]) -> None:
    js = nc.jetstream()
    for start in range(0, len(msgs), WINDOW):
        futures = [
            await js.publish_async(subject, payload, headers=headers, wait_stall=None)
            for subject, headers, payload in msgs[start : start + WINDOW]
        ]
        await asyncio.gather(*futures)


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> Timing:
    wall, cpu = _clock()
    return Timing(wall - start[0], cpu - start[1])


async def raw(nc: Client, data: list[tuple[str, int, bytes]], source: str) -> Timing:
    msgs = [
        (
            subjects.fleet(source, "r", device),
            {"Nats-Msg-Id": subjects.msg_id(source, device, "r", seq)},
            payload,
        )
        for device, seq, payload in data
    ]
    start = _clock()
    await publish_windowed(nc, msgs)
    return _since(start)


async def drain(nc: Client, data: list[tuple[str, int, bytes]], cfg: UplinkConfig) -> Timing:
    leaf = nc.jetstream(domain=subjects.gateway_domain(GATEWAY))
    await streams.ensure_stream(leaf, streams.uplink_stream(GATEWAY))
    await publish_windowed(nc, [(f"baton.d.{d}.r", {}, p) for d, _, p in data])
    start = _clock()
    async with Uplink(nc, GATEWAY, cfg) as uplink:
        # The stopwatch reads a counter every 2 ms: a measurement, not a wait for state.
        while uplink.stats().forwarded < len(data):  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        timing = _since(start)
    return timing


async def run(messages: int, sync_always: bool, batch: int, rounds: int) -> Result:
    """Alternate raw and drain `rounds` times; keep the best of each (a shared machine)."""
    raws: list[Timing] = []
    drains: list[Timing] = []
    async with LocalTopology(GATEWAY, sync_always=sync_always) as topo:
        hub = await nats.connect(topo.hub.client_url)
        await streams.ensure_hub(hub.jetstream())
        await hub.close()
        nc = await nats.connect(topo.leaf.client_url)
        try:
            for i in range(rounds):
                # Fresh sequence numbers each round, or the hub's dedupe would drop them.
                data = readings(messages, first_seq=i * messages)
                raws.append(await raw(nc, data, f"raw{i}"))
                drains.append(await drain(nc, data, UplinkConfig(batch=batch)))
        finally:
            await nc.close()
    best = min(raws, key=lambda t: t.wall_s), min(drains, key=lambda t: t.wall_s)
    return Result(messages, *best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-sync", action="store_true", help="run both servers without sync_interval: always"
    )
    args = parser.parse_args()
    result = asyncio.run(run(args.messages, not args.no_sync, args.batch, args.rounds))
    print(result.report())


if __name__ == "__main__":
    main()
