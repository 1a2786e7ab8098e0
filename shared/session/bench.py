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
import contextlib
import statistics
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import nats

from shared.compat import timeout
from shared.messages import ContentChunk, SessionSnapshot
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
    of a bare data channel, both set up side by side. One event at a time, alternating
    ours and bare in ABBA order (each sent once the previous arrived: a shared machine's
    load, and what one path leaves for the loop to do after its message arrived, fall on
    both alike), or with `burst` each path's events all sent at once. The bare channel
    carries the very bytes our channel does (the same event, framed), with the same
    options (ordered, reliable), between two peer connections in this process too."""
    session = _fresh(session)
    payload = _sample_bytes(session, messages)
    async with contextlib.AsyncExitStack() as stack:
        ours = await _our_path(stack, hub_url, session)
        bare = await _bare_path(stack, payload)
        async with timeout(WAIT_S * 4):
            if burst:
                figures = (await _burst(ours, messages), await _burst(bare, messages))
            else:
                figures = await _alternate(ours, bare, messages)
    return StreamFigures(len(payload), *figures)


@dataclass(frozen=True, slots=True)
class _Path:
    send: Callable[[], Awaitable[float]]  # sends one event; the loop time it went
    arrived: asyncio.Queue[float]  # the loop time each one arrived, in order


async def _alternate(ours: _Path, bare: _Path, messages: int) -> tuple[Latency, Latency]:
    samples: tuple[list[float], list[float]] = ([], [])
    pairs = ((ours, samples[0]), (bare, samples[1]))
    for i in range(messages):
        for path, kept in pairs if i % 2 == 0 else pairs[::-1]:
            sent = await path.send()
            kept.append((await path.arrived.get() - sent) * 1000)
    return Latency.of(samples[0]), Latency.of(samples[1])


async def _burst(path: _Path, messages: int) -> Latency:
    sent_at = [await path.send() for _ in range(messages)]
    return Latency.of([(await path.arrived.get() - sent) * 1000 for sent in sent_at])


async def _our_path(stack: contextlib.AsyncExitStack, hub_url: str, session: str) -> _Path:
    loop = asyncio.get_running_loop()
    settings = SessionSettings(ttl_s=5.0, checkpoint_turns=False)
    owner_nc, follower_nc = await nats.connect(hub_url), await nats.connect(hub_url)
    stack.push_async_callback(follower_nc.close)
    stack.push_async_callback(owner_nc.close)
    host = SessionHost(owner_nc, Owner("cloud", "bench"), _load, settings=settings)
    await stack.enter_async_context(host)
    await _bench_session_cloud(host, session)
    runner = host.runners[session]
    stack.push_async_callback(runner.end)
    feed = EventFeed(follower_nc, hub_js(follower_nc), session, side="cloud",
                     after=runner.stream.last_seq, redial_s=None)  # fmt: skip
    await stack.enter_async_context(feed)
    async with timeout(WAIT_S):
        await feed.wait_via("rtc")
    arrived: asyncio.Queue[float] = asyncio.Queue()
    feed.listen(lambda event: arrived.put_nowait(loop.time()))

    async def send() -> float:
        event = await runner.agent.emit(ContentChunk, text=TEXT)  # what a turn yields
        sent = loop.time()
        runner.publish(event)
        return sent

    return _Path(send, arrived)


async def _bench_session_cloud(host: SessionHost, session: str) -> None:
    from shared.agent import AgentSession, RuleBackend

    agent = AgentSession(session, gw=BENCH_GW, backend=RuleBackend(), side="cloud")
    await host.open(agent, session, gw=BENCH_GW)


def _sample_bytes(session: str, seq: int) -> bytes:
    """What our channel carries for one event of `session`: its frame of one."""
    from shared.codec import encode
    from shared.session.frames import pack_one

    return pack_one(encode(ContentChunk(session=session, seq=seq, epoch=1, text=TEXT)))


async def _bare_path(stack: contextlib.AsyncExitStack, payload: bytes) -> _Path:
    """The same bytes on a data channel between two peer connections, nothing else."""
    # `createDataChannel`'s defaults are ours: ordered, reliable (no lifetime or retransmit
    # limit). Which side sends does not matter: measured both ways, the same to 1 %.
    from aiortc import RTCPeerConnection

    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[float] = asyncio.Queue()
    a = RTCPeerConnection(rtc.rtc_configuration())
    stack.push_async_callback(a.close)
    b = RTCPeerConnection(rtc.rtc_configuration())
    stack.push_async_callback(b.close)
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

    return _Path(send, arrived)


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
