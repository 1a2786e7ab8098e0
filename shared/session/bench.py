"""Benchmarks of the handoff protocol (for `baton bench`; not timed tests).

    await handoff_latency(hub_url, edge_url, snapshot_bytes=64 * 1024, count=200)
        request -> the new owner accepting input, a session handed edge <-> cloud
    await stream_latency(hub_url, messages=500)
        one event's trip over our WebRTC stream (EventStream -> ChannelSink -> EventFeed,
        NATS signaling, the log appending alongside) vs the same bytes on a bare aiortc
        data channel, in the same run: one event at a time (our overhead laid bare)
    await stream_latency(hub_url, messages=2000, burst=True)
        the same, every event sent at once (a model streaming fast): framing at work

Both take NATS URLs of a hub with the hub layout (`streams.ensure_hub`); the edge may
connect through its leaf. Figures are milliseconds.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import nats

from shared.compat import timeout
from shared.messages import AgentEventBase, ContentChunk, SessionSnapshot
from shared.session import rtc
from shared.session.agent import SessionAgent
from shared.session.feed import EventFeed
from shared.session.host import SessionHost
from shared.session.owner import Owner
from shared.session.runner import SessionSettings, hub_js

BENCH_GW: Final = "bench"
WAIT_S: Final = 30.0
TEXT: Final = "x" * 100  # a framed chunk of model output


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds over `count` samples."""

    count: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Latency:
        ordered = sorted(samples_ms)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return cls(len(ordered), statistics.median(ordered), p99, statistics.fmean(ordered))


@dataclass(frozen=True, slots=True)
class HandoffFigures:
    snapshot_bytes: int
    latency: Latency
    steps_p50_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StreamFigures:
    payload_bytes: int
    ours: Latency
    bare: Latency

    @property
    def ratio_p50(self) -> float:
        return self.ours.p50_ms / self.bare.p50_ms


async def _load(snapshot: SessionSnapshot) -> SessionAgent:
    from shared.agent import AgentSession, RuleBackend

    return AgentSession.from_snapshot(snapshot, backend=RuleBackend())


def _fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"  # a benchmark never meets an old session


async def _bench_session(edge: SessionHost, session: str, snapshot_bytes: int) -> None:
    from shared.agent import AgentSession, RuleBackend

    agent = AgentSession(session, gw=BENCH_GW, backend=RuleBackend(), side="edge")
    # The snapshot's bulk: a conversation's worth of text in working memory.
    agent.memory["pad"] = "x" * max(0, snapshot_bytes - 512)
    await edge.open(agent, session, gw=BENCH_GW)


async def handoff_latency(
    hub_url: str,
    edge_url: str | None = None,
    *,
    snapshot_bytes: int = 64 * 1024,
    count: int = 200,
    session: str = "bench-handoff",
) -> HandoffFigures:
    """Hand one session edge -> cloud -> edge ... `count` times; each handoff's latency
    from the request to the new owner accepting input (its commit answered)."""
    settings = SessionSettings(ttl_s=5.0, checkpoint_turns=False)
    session = _fresh(session)
    conns = [await nats.connect(edge_url or hub_url), await nats.connect(hub_url)]
    samples: list[float] = []
    steps: dict[str, list[float]] = {}
    try:
        edge = SessionHost(conns[0], Owner("edge", BENCH_GW), _load, gw=BENCH_GW, settings=settings)
        cloud = SessionHost(conns[1], Owner("cloud", "bench"), _load, settings=settings)
        async with edge, cloud:
            await _bench_session(edge, session, snapshot_bytes)
            hosts = (edge, cloud)
            for i in range(count):
                report = await hosts[i % 2].handoff(session, "cloud" if i % 2 == 0 else "edge")
                if not report.ok:
                    raise RuntimeError(f"handoff {i} failed at {report.step}: {report.error}")
                samples.append(report.latency_ms)
                for step in report.steps:
                    steps.setdefault(step.name, []).append(step.ms)
            await _end(edge, cloud, session)
    finally:
        for nc in conns:
            await nc.close()
    medians = {name: statistics.median(values) for name, values in steps.items()}
    return HandoffFigures(snapshot_bytes, Latency.of(samples), medians)


async def _end(edge: SessionHost, cloud: SessionHost, session: str) -> None:
    for host in (edge, cloud):
        runner = host.runners.get(session)
        if runner is not None:
            await runner.end()


async def stream_latency(
    hub_url: str, *, messages: int = 500, burst: bool = False, session: str = "bench-stream"
) -> StreamFigures:
    """The one-way latency of our stream (owner runner -> follower feed over WebRTC) and
    of a bare data channel: one event at a time (each sent once the previous arrived),
    or with `burst` all sent at once."""
    settings = SessionSettings(ttl_s=5.0, checkpoint_turns=False)
    session = _fresh(session)
    owner_nc, follower_nc = await nats.connect(hub_url), await nats.connect(hub_url)
    try:
        host = SessionHost(owner_nc, Owner("cloud", "bench"), _load, settings=settings)
        async with host:
            await _bench_session_cloud(host, session)
            runner = host.runners[session]
            feed = EventFeed(follower_nc, hub_js(follower_nc), session, side="cloud",
                             after=runner.stream.last_seq, redial_s=None)  # fmt: skip
            async with feed:
                async with timeout(WAIT_S):
                    await feed.wait_via("rtc")
                ours = await _ours(runner, feed, messages, burst)
            await runner.end()
        payload = len(_sample_bytes(session))
        bare = await _bare(messages, _sample_bytes(session), burst)
    finally:
        await owner_nc.close()
        await follower_nc.close()
    return StreamFigures(payload, ours, bare)


async def _bench_session_cloud(host: SessionHost, session: str) -> None:
    from shared.agent import AgentSession, RuleBackend

    agent = AgentSession(session, gw=BENCH_GW, backend=RuleBackend(), side="cloud")
    await host.open(agent, session, gw=BENCH_GW)


def _sample_bytes(session: str) -> bytes:
    from shared.codec import encode

    return encode(ContentChunk(session=session, seq=1, epoch=1, text=TEXT))


async def _ours(runner: Any, feed: EventFeed, messages: int, burst: bool) -> Latency:
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[float] = asyncio.Queue()

    def on_event(event: AgentEventBase) -> None:
        arrived.put_nowait(loop.time())

    async def send() -> float:
        event = await runner.agent.emit(ContentChunk, text=TEXT)  # what a turn yields
        sent = loop.time()
        runner.publish(event)
        return sent

    undo = feed.listen(on_event)
    try:
        return await _measure(send, arrived, messages, burst)
    finally:
        undo()


async def _measure(send: Any, arrived: asyncio.Queue[float], messages: int, burst: bool) -> Latency:
    sent_at: list[float] = []
    samples: list[float] = []
    async with timeout(WAIT_S):
        for _ in range(messages):
            sent_at.append(await send())
            if not burst:
                samples.append((await arrived.get() - sent_at[-1]) * 1000)
        for sent in sent_at[len(samples) :]:  # burst: they arrive in order
            samples.append((await arrived.get() - sent) * 1000)
    return Latency.of(samples)


async def _bare(messages: int, payload: bytes, burst: bool) -> Latency:
    """The same sends on a data channel between two peer connections, nothing else."""
    from aiortc import RTCPeerConnection

    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[float] = asyncio.Queue()
    a = RTCPeerConnection(rtc.rtc_configuration())
    b = RTCPeerConnection(rtc.rtc_configuration())
    try:
        channel = a.createDataChannel("bare")
        opened = asyncio.Event()
        channel.on("open", opened.set)

        @b.on("datachannel")
        def _on_channel(remote: Any) -> None:
            remote.on("message", lambda data: arrived.put_nowait(loop.time()))

        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        async with timeout(WAIT_S):
            await opened.wait()

        async def send() -> float:
            sent = loop.time()
            channel.send(payload)
            return sent

        return await _measure(send, arrived, messages, burst)
    finally:
        await a.close()
        await b.close()


async def run_all(hub_url: str, edge_url: str | None = None, *, count: int = 200) -> dict[str, Any]:
    """Every figure the issue asks for, as a dict `baton bench` can print."""
    small = await handoff_latency(hub_url, edge_url, snapshot_bytes=64 * 1024, count=count,
                                  session="bench-64k")  # fmt: skip
    large = await handoff_latency(hub_url, edge_url, snapshot_bytes=4 * 1024 * 1024,
                                  count=max(10, count // 10), session="bench-4m")  # fmt: skip
    stream = await stream_latency(hub_url)
    burst = await stream_latency(hub_url, messages=2000, burst=True)
    return {
        "handoff_64k": small,
        "handoff_4m": large,
        "stream": stream,
        "stream_ratio_p50": stream.ratio_p50,
        "stream_burst": burst,
    }
