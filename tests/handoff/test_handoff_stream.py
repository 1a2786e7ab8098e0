"""The live stream: WebRTC while it works, the NATS log when it does not, never a gap or
a repeat.

What a user notices: the cloud's answer streams to the gateway as it is written; when
the channel is cut (closed, or silently dropping everything) the rest still arrives,
every event once and in order.
"""

from __future__ import annotations

import asyncio

import pytest
from handoffkit import WAIT_S, Sides, start_session
from nats.errors import TimeoutError as NatsTimeout

from shared.compat import timeout
from shared.messages import AgentEventBase, ContentChunk
from shared.session import EventFeed
from shared.session.runner import hub_js

EVENTS = 400


@pytest.mark.parametrize("cut", ["close", "blackhole"])
async def test_webrtc_carries_the_stream_and_nats_takes_over_when_cut(
    hub_sides: Sides, cut: str
) -> None:
    edge = await hub_sides.edge()
    cloud = await hub_sides.cloud()
    await start_session(edge)
    moved = await edge.handoff("s1", "cloud")
    feed = edge.feeds["s1"]  # the edge follows what it handed over
    async with timeout(WAIT_S):
        await feed.wait_via("rtc")
    runner = cloud.runners["s1"]
    first = runner.stream.last_seq + 1
    got: list[AgentEventBase] = []
    done = asyncio.Event()

    def collect(event: AgentEventBase) -> None:
        got.append(event)
        if event.seq == first + EVENTS - 1:
            done.set()

    feed.listen(collect)
    for i in range(EVENTS):
        await runner.emit(ContentChunk, text=f"t{i}")
        if i == EVENTS // 2:
            (sink,) = runner.stream.sinks
            if cut == "close":
                await sink.peer.aclose()
            else:  # the transport goes on accepting bytes and delivers none
                sink.peer.send = lambda data: True  # type: ignore[method-assign]
        if i % 10 == 0:
            await asyncio.sleep(0)  # let the channel and the log run, as a model's pace would
    async with timeout(WAIT_S):
        await done.wait()

    assert [event.seq for event in got] == list(range(first, first + EVENTS))
    assert [getattr(event, "text", "") for event in got] == [f"t{i}" for i in range(EVENTS)]
    assert {event.epoch for event in got} == {moved.epoch}
    assert feed.stats.rtc_events > 0 and feed.stats.nats_events > 0
    assert feed.stats.drops >= 1 and feed.gate.stats.stale == 0


async def test_a_follower_without_webrtc_reads_the_log(hub_sides: Sides) -> None:
    edge = await hub_sides.edge()
    await start_session(edge)
    runner = edge.runners["s1"]
    for i in range(5):
        await runner.emit(ContentChunk, text=f"t{i}")
    reader = await hub_sides.connect(hub_sides.cloud_url)
    feed = EventFeed(reader, hub_js(reader), "s1", side="edge", use_rtc=False)
    async with feed, timeout(WAIT_S):
        events = [await feed.__anext__() for _ in range(5)]
    assert [getattr(event, "text", "") for event in events] == [f"t{i}" for i in range(5)]
    assert feed.via == "nats"


async def test_a_follower_outlives_a_log_consumer_that_timed_out(
    hub_sides: Sides, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy or restarting hub times a consumer create out; the follower tries again
    instead of ending, and still delivers every event once."""
    edge = await hub_sides.edge()
    await start_session(edge)
    runner = edge.runners["s1"]
    for i in range(3):
        await runner.emit(ContentChunk, text=f"t{i}")
    reader = await hub_sides.connect(hub_sides.cloud_url)
    feed = EventFeed(reader, hub_js(reader), "s1", side="edge", use_rtc=False)
    real, failures = feed._subscribe, [NatsTimeout(), NatsTimeout()]

    async def flaky() -> object:
        if failures:
            raise failures.pop()
        return await real()

    monkeypatch.setattr(feed, "_subscribe", flaky)
    async with feed, timeout(WAIT_S):
        events = [await feed.__anext__() for _ in range(3)]
    assert failures == []
    assert [getattr(event, "text", "") for event in events] == [f"t{i}" for i in range(3)]
