"""The handoff timeline of a real session on a real hub, across a hub restart, a replica
that starts again, replays of the session log, and a dead owner's frame that lands late.

Both sides run the handoff protocol over the agent engine with a scripted model
(tests/handoff/handoffkit). The cloud's dashboard must show exactly the session's two
handoffs, each once, each with its four steps, whatever reads the log again and however
its owners numbered their events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from dashkit import Served, next_of, running_dashboard
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, Header

from cloud.dashboard.sessiontap import SessionTap
from cloud.dashboard.traces import TraceStore
from shared import codec, streams, subjects
from shared.compat import timeout
from shared.messages import AgentComplete, AgentEventBase, ContentChunk, HandoffRequest
from shared.natsrun import NatsServer
from shared.session import SessionHost, SessionRunner, Side
from shared.session.frames import Mark, pack, unpack
from shared.session.log import log_tail
from shared.session.runner import hub_js
from tests.handoff.handoffkit import Sides, running, settings, start_session, turn

pytestmark = pytest.mark.slow

SESSION = "s1"
WAIT_S = 30.0  # a feed re-created after a hub restart: two missed heartbeats, then a fetch
# A lease outlives the restart (a quick one on loopback), so nothing is reclaimed; live
# channels are left out: the dashboard reads the log.
SETTINGS = settings(ttl_s=10.0, rtc=False)
# A dead owner's lease runs out within a second or two.
FAST = settings(rtc=False)
STEPS = ["request", "snapshot", "accepted by", "complete:"]
LATE_EVENTS = 12  # the dead owner's answer, streamed but made durable only now

Row = tuple[str, str, str, tuple[str, ...]]


@pytest.fixture
async def hub_nc(hub: NatsServer) -> AsyncIterator[Client]:
    """The replica's own hub connection, back quickly after a restart."""
    nc = await nats.connect(hub.client_url, reconnect_time_wait=0.2, max_reconnect_attempts=-1)
    try:
        await streams.ensure_hub(nc.jetstream())
        yield nc
    finally:
        await nc.close()


async def test_the_timeline_shows_both_handoffs_once_after_a_restart_and_replays(
    hub: NatsServer, hub_nc: Client, tmp_path: Path
) -> None:
    sides = Sides(edge_url=hub.client_url, cloud_url=hub.client_url)
    try:
        async with running_dashboard(hub_nc, tmp_path, "r1") as served:
            edge = await sides.edge(settings=SETTINGS)
            cloud = await sides.cloud(settings=SETTINGS)
            tail = await _operator_session(edge, cloud)
            await _caught_up(served, tail)
            both = _rows(served.dashboard.sessions)
            assert [(to, state) for _, to, state, _ in both] == [
                ("cloud", "completed"), ("edge", "completed")
            ]  # fmt: skip
            assert all(_named(steps) for *_, steps in both), both

            await hub.restart()
            for nc in sides.conns:  # the sides are back on the hub
                await nc.flush(timeout=int(WAIT_S))
            tail = (await turn(edge, SESSION, "and after the restart?"))[-1].seq
            await _caught_up(served, tail)  # the feed came back, past the restart
            assert _rows(served.dashboard.sessions) == both

            # A replica that starts now reads the log again from its backfill.
            async with running_dashboard(hub_nc, tmp_path, "r2") as again:
                await _caught_up(again, tail)
                assert _rows(again.dashboard.sessions) == both

            # The whole log once more, into the live fold and into a fresh one, twice.
            log = await _frames(hub_nc)
            fresh = SessionTap(TraceStore())
            for data in log:
                served.dashboard.sessions.on_frame(data)
            for data in [*log, *log]:
                fresh.on_frame(data)
            assert _rows(served.dashboard.sessions) == _rows(fresh) == both
            listed = (await served.client.get("/api/dashboard")).json()["handoffs"]
            assert [h["id"] for h in listed] == [row[0] for row in both]
    finally:
        await sides.close()


async def test_a_dead_owners_late_frame_hides_no_handoff(
    hub: NatsServer, hub_nc: Client, tmp_path: Path
) -> None:
    """edge → cloud r1; r1 dies. Its last frame, held up the way a hub restart holds a
    publish its client buffered, lands just after the edge read the log's end to take
    the session back, so the edge numbers on from below that frame's seqs (a foreign
    append, shared/session/log.py). The operator then hands the session to cloud r2."""
    sides = Sides(edge_url=hub.client_url, cloud_url=hub.client_url)
    try:
        async with running_dashboard(hub_nc, tmp_path, "d") as served:
            edge = await sides.edge(settings=FAST)
            r1 = await sides.cloud("r1", settings=FAST)
            await start_session(edge, SESSION)
            await turn(edge, SESSION, "why did the fan on pump-0 turn on?")
            assert (await edge.handoff(SESSION, "cloud", reason="chat")).ok
            await running(r1, SESSION)
            await turn(edge, SESSION, "which devices need attention?")
            dead_epoch = r1.runners[SESSION].epoch
            tail = await log_tail(hub_js(edge.nc), SESSION)
            late: list[asyncio.Task[None]] = []

            def land_late(runner: SessionRunner) -> None:  # the edge took it back
                frame = _late_frame(tail, dead_epoch)
                late.append(asyncio.create_task(_append(edge, tail, frame, dead_epoch)))

            undo = edge.on_runner(land_late)
            await r1.abort()  # its lease is no longer renewed: the edge reclaims it
            await running(edge, SESSION)
            undo()
            await asyncio.gather(*late)

            r2 = await sides.cloud("r2", settings=FAST)
            assert (await edge.handoff(SESSION, "cloud", reason="chat")).ok
            await running(r2, SESSION)
            end = (await turn(edge, SESSION, "and now?"))[-1].seq
            await _caught_up(served, end)

            log = [e for data in await _frames(hub_nc) for e in unpack(data).events]
            requests = [e for e in log if isinstance(e, HandoffRequest)]
            assert requests[1].seq <= tail.seq + LATE_EVENTS  # numbered below the late frame
            rows = _rows(served.dashboard.sessions)
            assert [(to, state) for _, to, state, _ in rows] == [
                ("cloud", "completed"), ("cloud", "completed")
            ]  # fmt: skip
            assert all(_named(steps) for *_, steps in rows), rows
    finally:
        await sides.close()


def _late_frame(tail: Mark, epoch: int) -> bytes:
    text = "pump-0 and bearing-1 "
    events: list[AgentEventBase] = [ContentChunk(session=SESSION, seq=tail.seq + i, epoch=epoch, text=text)
              for i in range(1, LATE_EVENTS)]  # fmt: skip
    events.append(AgentComplete(session=SESSION, seq=tail.seq + LATE_EVENTS, epoch=epoch,
                                text=text))  # fmt: skip
    return pack([codec.encode(e) for e in events])


async def _append(edge: SessionHost, tail: Mark, frame: bytes, epoch: int) -> None:
    """The dead owner's append as its `EventLog` sent it (compare-and-set on the log's
    end it knew), on the connection the edge appends on: it lands before the edge's."""
    headers = {
        Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(tail.log_pos),
        Header.MSG_ID.value: f"{SESSION}:{epoch}:{tail.seq + 1}",
    }
    await hub_js(edge.nc).publish(subjects.session_events(SESSION), frame, headers=headers)


async def _operator_session(edge: SessionHost, cloud: SessionHost) -> int:
    """A question, to the cloud, a question there, back to the edge, a question: the
    seq of the last event."""
    await start_session(edge, SESSION)
    await turn(edge, SESSION, "why did the fan on pump-0 turn on?")
    moves: list[tuple[SessionHost, Side, str]] = [
        (cloud, "cloud", "which devices need attention?"),
        (edge, "edge", "what is bearing-1 doing?"),
    ]
    for host, to, question in moves:
        report = await edge.handoff(SESSION, to, reason="chat")
        assert report.ok, report
        await running(host, SESSION)
        tail = (await turn(edge, SESSION, question))[-1].seq
    return tail


async def _caught_up(served: Served, seq: int) -> None:
    """Until the replica's dashboard has folded the session's log up to `seq`."""
    sub = served.bus.subscribe(["agent"])
    try:
        stream = served.dashboard.sessions.streams.get(SESSION)
        if stream is None or stream.last_seq < seq:
            async with timeout(WAIT_S):
                await next_of(sub, "agent", lambda e: e["session"] == SESSION and e["seq"] >= seq)
    finally:
        sub.close()


def _rows(tap: SessionTap) -> list[Row]:
    return [(h.id, h.to, h.state, tuple(s.name for s in h.steps)) for h in tap.handoffs.values()]


def _named(steps: tuple[str, ...]) -> bool:
    return len(steps) == len(STEPS) and all(
        step.startswith(name) for step, name in zip(steps, STEPS, strict=True)
    )


async def _frames(nc: Client) -> list[bytes]:
    """Every frame of the session's log, as SESSIONS holds it."""
    js = nc.jetstream()
    subject = subjects.session_events(SESSION)
    end = (await js.get_msg(subjects.SESSIONS_STREAM, subject=subject)).seq
    config = ConsumerConfig(ack_policy=AckPolicy.NONE)
    sub = await js.pull_subscribe(subject, stream=subjects.SESSIONS_STREAM, config=config)
    frames: list[bytes] = []
    try:
        position = 0
        while position < (end or 0):
            for msg in await sub.fetch(64, timeout=WAIT_S):
                position = msg.metadata.sequence.stream
                frames.append(msg.data)
    finally:
        await sub.unsubscribe()
    return frames
