"""Faults: the new owner dies, a paused old owner wakes up, a handoff is cut at each step.

What a user notices: the conversation goes on at the gateway within about a lease TTL of
the cloud dying, the question it was answering is answered again, a late command from a
fenced-out owner does nothing, and however a handoff is interrupted there is one owner.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from handoffkit import (
    GW,
    TTL_S,
    WAIT_S,
    Sides,
    conversation,
    running,
    settings,
    start_session,
    turn,
)

from edge.actuate import ActuationGuard, GuardPolicy
from edge.config import ActuateConfig
from edge.errors import GuardRefused
from shared.codec import encode
from shared.compat import timeout
from shared.messages import AgentComplete, AgentStart, Command, ContentChunk, HandoffAbort, now_ms
from shared.session import LeaseLost, Mark, NotOwner, SessionHost
from shared.session.log import log_tail, read_log
from shared.session.runner import hub_js


async def owner_becomes(host: SessionHost, session: str, owner: str) -> float:
    """Wait until `host`'s board shows `owner` holding `session`; the loop time then."""
    async with timeout(WAIT_S):
        await host.board.wait(
            session, lambda lease: lease is not None and lease.value.owner == owner
        )
    return asyncio.get_running_loop().time()


async def test_cloud_killed_mid_answer_edge_reclaims_within_ttl_and_answers(sides: Sides) -> None:
    edge = await sides.edge()
    cloud = await sides.cloud()
    await start_session(edge)
    await turn(edge, "s1", "one")
    moved = await edge.handoff("s1", "cloud")
    assert moved.ok, moved.error
    model = sides.model("cloud:r1")
    model.gate = asyncio.Event()  # the cloud's model stalls before its first token
    answer = edge.ask("s1", "two")
    async with timeout(WAIT_S):
        seen = [await answer.__anext__()]
        await model.waiting.wait()
    assert isinstance(seen[0], AgentStart) and seen[0].epoch == moved.epoch

    await cloud.abort()  # its tasks die; the lease is not released, just no longer renewed
    killed = asyncio.get_running_loop().time()
    back = await owner_becomes(edge, "s1", f"edge:{GW}")
    assert back - killed < TTL_S * 2

    async with timeout(WAIT_S):
        seen += [event async for event in answer]
    assert any(isinstance(e, HandoffAbort) and "reclaimed" in e.reason for e in seen)
    assert isinstance(seen[-1], AgentComplete) and seen[-1].text == "echo: two"
    assert seen[-1].epoch > moved.epoch  # answered again, by the edge, at its new epoch
    await turn(edge, "s1", "three")
    assert conversation(edge, "s1") == [
        ("user", "one"), ("assistant", "echo: one"),
        ("user", "two"), ("assistant", "echo: two"),
        ("user", "three"), ("assistant", "echo: three"),
    ]  # fmt: skip


async def test_stale_epoch_actuation_is_refused_by_the_edge_guard(hub_sides: Sides) -> None:
    edge = await hub_sides.edge()
    await hub_sides.cloud()
    await start_session(edge)
    old = edge.runners["s1"]
    old_epoch = old.epoch
    guard = ActuationGuard(GuardPolicy.build(ActuateConfig(), frozenset({"fan"})))

    def command(epoch: int) -> Command:
        return Command(device="pump1", action="fan", deadline_ms=now_ms() + 5000,
                       session="s1", epoch=epoch)  # fmt: skip

    assert guard.check(command(old_epoch), now_ms())  # the edge owned it and acted
    moved = await edge.handoff("s1", "cloud")
    assert moved.ok and moved.epoch > old_epoch
    assert guard.check(command(moved.epoch), now_ms())  # the cloud acts at its epoch
    with pytest.raises(GuardRefused) as refused:
        guard.check(command(old_epoch), now_ms())  # the old owner's late command
    assert refused.value.reason == "stale_epoch"
    with pytest.raises(NotOwner):  # ... and the old runner itself refuses to act
        await old.emit(ContentChunk, text="late")


async def test_a_paused_owner_that_wakes_up_late_is_fenced_out(hub_sides: Sides) -> None:
    edge = await hub_sides.edge()
    cloud = await hub_sides.cloud()
    await start_session(edge)
    moved = await edge.handoff("s1", "cloud")
    zombie = cloud.runners["s1"]
    before = await log_tail(hub_js(edge.nc), "s1")
    await zombie.keeper.aclose()  # "SIGSTOP": its renewals stop, the runner does not know

    await running(edge, "s1")
    reclaimed = edge.runners["s1"]
    assert reclaimed.epoch > moved.epoch
    # It wakes up: its own clock says the lease ran out, so it does not act ...
    with pytest.raises(LeaseLost):
        await zombie.emit(ContentChunk, text="late")
    # ... and what it had queued for the log is refused by the log's CAS.
    late = ContentChunk(session="s1", seq=before.seq + 1, epoch=moved.epoch, text="late")
    zombie.log.push(late.seq, encode(late))
    with pytest.raises(LeaseLost):
        await zombie.log.flush()
    events = await read_log(hub_js(edge.nc), "s1", after=0)
    assert not any(getattr(event, "text", "") == "late" for event in events)


async def _stall(*_: Any, **__: Any) -> Any:
    await asyncio.Event().wait()


async def test_handoff_cut_between_snapshot_and_flip_leaves_the_edge_owning(
    hub_sides: Sides, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = await hub_sides.edge(settings=settings(prepare_timeout_s=0.5))
    cloud = await hub_sides.cloud()
    await start_session(edge)
    await turn(edge, "s1", "one")
    monkeypatch.setattr(cloud._intake, "prepare", _stall)  # the snapshot is out, no answer
    report = await edge.handoff("s1", "cloud")
    assert (report.ok, report.step) == (False, "prepare")
    lease = edge.lease("s1")
    assert lease is not None and lease.value.owner == f"edge:{GW}"
    assert "s1" in edge.runners and "s1" not in cloud.runners
    events = await turn(edge, "s1", "two")  # it never stopped owning it
    log = await read_log(hub_js(edge.nc), "s1", after=0)
    assert [e.type for e in log if e.type.startswith("handoff")] == [
        "handoff_request", "handoff_snapshot", "handoff_abort",
    ]  # fmt: skip
    assert events[-1].epoch == lease.epoch


async def test_edge_killed_between_snapshot_and_flip_recovers_its_session(
    hub_sides: Sides, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = await hub_sides.edge()
    cloud = await hub_sides.cloud()
    await start_session(edge)
    await turn(edge, "s1", "one")
    prepared = asyncio.Event()

    async def prepare_then_stall(*args: Any, **kwargs: Any) -> Any:
        prepared.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(cloud._intake, "prepare", prepare_then_stall)
    handing = asyncio.create_task(edge.handoff("s1", "cloud"))
    async with timeout(WAIT_S):
        await prepared.wait()
    await edge.abort()  # the gateway dies with its snapshot written, the lease unflipped
    handing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handing
    restarted = await hub_sides.edge()  # the daemon comes back: same owner id
    await running(restarted, "s1")
    await turn(restarted, "s1", "two")
    assert conversation(restarted, "s1")[:2] == [("user", "one"), ("assistant", "echo: one")]
    assert "s1" not in cloud.runners


async def test_handoff_cut_between_flip_and_load_returns_to_the_old_owner(
    hub_sides: Sides, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = await hub_sides.edge(settings=settings(commit_timeout_s=0.5))
    cloud = await hub_sides.cloud()
    await start_session(edge)
    await turn(edge, "s1", "one")
    monkeypatch.setattr(cloud._intake, "commit", _stall)  # the flip lands, nobody loads
    monkeypatch.setattr(cloud._intake, "on_lease", _stall)
    report = await edge.handoff("s1", "cloud")
    assert (report.ok, report.step, report.owner) == (False, "commit", "cloud:r1")
    await cloud.abort()
    await running(edge, "s1")
    assert "s1" not in cloud.runners
    await turn(edge, "s1", "two")
    assert conversation(edge, "s1") == [
        ("user", "one"), ("assistant", "echo: one"), ("user", "two"), ("assistant", "echo: two"),
    ]  # fmt: skip
    tail = await log_tail(hub_js(edge.nc), "s1")
    assert tail != Mark()
