"""A reclaimed session goes on from the log's end; an owner whose log fails does not wedge
its session; a handoff order is checked against the lease, not a stale board.

What a user notices: after the gateway dies and takes its session back, the question it
had already answered is not answered a second time, and a tool it ran is not run again;
after a hub outage the session answers again (its owner, or whoever reclaims it); and
`/handoff edge` does not say "already there" while the cloud still has the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import nats.errors
import pytest
from handoffkit import GW, WAIT_S, Model, Sides, conversation, running, start_session, turn

from shared import subjects
from shared.agent.backend import Output, TextDelta, ToolCall, ToolSpec
from shared.compat import timeout
from shared.messages import (
    AgentComplete,
    AgentError,
    AgentStart,
    ChatMessage,
    ContentChunk,
    SessionSnapshot,
    ToolExecution,
)
from shared.session import Owner, SessionHost
from shared.session.log import read_log
from shared.session.reclaim import catch_up
from shared.session.runner import hub_js


async def test_a_reclaimed_session_does_not_answer_its_last_question_again(
    hub_sides: Sides,
) -> None:
    edge = await hub_sides.edge()
    await start_session(edge)
    await turn(edge, "s1", "one")  # its only checkpoint still has "one" pending
    await edge.runners["s1"].log.flush()  # the answer is in the log
    await edge.abort()  # the gateway dies; the lease runs out

    restarted = await hub_sides.edge()  # the daemon comes back: same owner id
    await running(restarted, "s1")
    await turn(restarted, "s1", "two")
    await restarted.runners["s1"].log.flush()
    events = await read_log(hub_js(restarted.nc), "s1", after=0)
    answers = [e.text for e in events if isinstance(e, AgentComplete)]
    assert answers == ["echo: one", "echo: two"]
    assert conversation(restarted, "s1") == [
        ("user", "one"), ("assistant", "echo: one"), ("user", "two"), ("assistant", "echo: two"),
    ]  # fmt: skip


class ToolThenStall(Model):
    """Calls a tool, then stalls in the next round: the owner dies with the tool run."""

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncGenerator[Output, None]:
        self.seen.append(list(messages))
        if len(self.seen) == 1:
            yield ToolCall("no_such_tool", {"fan": "on"})
            return
        self.waiting.set()
        await asyncio.Event().wait()
        yield TextDelta("never")


async def test_a_tool_run_by_the_dead_owner_is_not_run_again(hub_sides: Sides) -> None:
    edge = await hub_sides.edge()
    model = ToolThenStall(name="edge-model")
    await start_session(edge, model=model)
    await edge.runners["s1"].submit("fan on")
    async with timeout(WAIT_S):
        await model.waiting.wait()  # the tool ran
    await edge.runners["s1"].log.flush()  # ... and its result is logged
    await edge.abort()

    restarted = await hub_sides.edge()
    await running(restarted, "s1")
    await turn(restarted, "s1", "two")
    await restarted.runners["s1"].log.flush()
    events = await read_log(hub_js(restarted.nc), "s1", after=0)
    assert sum(isinstance(e, ToolExecution) for e in events) == 1
    assert any(isinstance(e, AgentError) and e.code == "interrupted" for e in events)
    assert conversation(restarted, "s1")[-2:] == [("user", "two"), ("assistant", "echo: two")]


class FlakyLog:
    """Makes the appends to a session's log fail (a hub outage, seen by the log only)."""

    def __init__(self, host: SessionHost, session: str, *, fails: int | None) -> None:
        self.js = host.ctx.js
        self.subject = subjects.session_events(session)
        self.real = self.js.publish
        self.fails = fails  # None: until `heal()`
        self.failed = 0

    async def publish(self, subject: str, payload: bytes = b"", **kwargs: Any) -> Any:
        if subject == self.subject and (self.fails is None or self.failed < self.fails):
            self.failed += 1
            raise nats.errors.TimeoutError
        return await self.real(subject, payload, **kwargs)

    def heal(self) -> None:
        self.fails = self.failed


async def test_an_owner_goes_on_once_its_log_appends_work_again(
    hub_sides: Sides, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = await hub_sides.edge()
    await start_session(edge)
    await turn(edge, "s1", "one")
    flaky = FlakyLog(edge, "s1", fails=4)  # every try of one append (~1.25 s)
    monkeypatch.setattr(flaky.js, "publish", flaky.publish)
    events = await turn(edge, "s1", "two")
    assert isinstance(events[-1], AgentComplete) and events[-1].text == "echo: two"
    assert flaky.failed == 4
    await edge.runners["s1"].log.flush()
    logged = await read_log(hub_js(edge.nc), "s1", after=0)
    assert [e.text for e in logged if isinstance(e, AgentComplete)] == ["echo: one", "echo: two"]


async def test_an_owner_whose_log_stays_down_lets_its_lease_run_out(
    hub_sides: Sides, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = await hub_sides.edge()
    await start_session(edge)
    await turn(edge, "s1", "one")
    wedged = edge.runners["s1"]
    flaky = FlakyLog(edge, "s1", fails=None)
    monkeypatch.setattr(flaky.js, "publish", flaky.publish)
    await wedged.submit("two")  # its first event cannot be logged
    async with timeout(WAIT_S):
        await wedged.keeper.lost.wait()  # it stops renewing: nobody else could take it
    assert not wedged.acting()
    flaky.heal()
    reclaimed = asyncio.Event()
    undo = edge.on_runner(lambda runner: reclaimed.set())
    async with timeout(WAIT_S):
        await reclaimed.wait()  # its lease ran out; this host takes it back by CAS
    undo()
    assert edge.runners["s1"] is not wedged and edge.runners["s1"].epoch > wedged.epoch
    await turn(edge, "s1", "three")
    assert conversation(edge, "s1")[-2:] == [("user", "three"), ("assistant", "echo: three")]


async def test_a_handoff_order_reads_the_lease_not_a_board_that_is_behind(
    hub_sides: Sides,
) -> None:
    edge = await hub_sides.edge()
    await hub_sides.cloud("r1")
    operator = await hub_sides.cloud("r2")  # where the order is typed (the API, say)
    await start_session(edge)
    await operator.board.aclose()  # its board stops here: it shows the edge owning s1
    moved = await edge.handoff("s1", "cloud", target=Owner("cloud", "r1"))
    assert moved.ok and moved.owner == "cloud:r1"

    report = await operator.handoff("s1", "edge")
    assert report.ok, report.error
    assert report.owner == f"edge:{GW}" and report.epoch > moved.epoch
    lease = await operator.ctx.leases.get("s1")
    assert lease is not None and lease.value.owner == f"edge:{GW}"


def _snapshot() -> SessionSnapshot:
    return SessionSnapshot(
        session="s1", gw=GW, epoch=3, owner="edge", last_seq=10,
        messages=[ChatMessage(role="user", content="q")],
        pending=[{"kind": "ask", "text": "q", "index": 0}],
    )  # fmt: skip


def test_catch_up_keeps_a_question_the_log_did_not_finish() -> None:
    stale = AgentComplete(session="s1", seq=11, epoch=2, text="a zombie's")  # below the epoch
    retry = AgentError(session="s1", seq=11, epoch=3, code="context", message="", retryable=True)
    for events in ([], [stale], [retry], [AgentStart(session="s1", seq=11, epoch=3)]):
        recovered = catch_up(_snapshot(), events)
        assert recovered.snapshot.pending and not recovered.interrupted
        assert len(recovered.snapshot.messages) == 1


def test_catch_up_puts_the_logged_answer_into_the_conversation() -> None:
    done = [
        ContentChunk(session="s1", seq=11, epoch=3, text="a"),
        AgentComplete(session="s1", seq=12, epoch=3, text="a"),
    ]
    recovered = catch_up(_snapshot(), done)
    assert not recovered.snapshot.pending
    assert [(m.role, m.content) for m in recovered.snapshot.messages] == [
        ("user", "q"), ("assistant", "a"),
    ]  # fmt: skip
