"""A reclaimed session goes on from the log's end: what its dead owner finished stays done.

What a user notices: after the gateway dies and takes its session back, the question it
had already answered is not answered a second time, and a tool it ran is not run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from handoffkit import WAIT_S, Model, Sides, conversation, running, start_session, turn

from shared.agent.backend import Output, TextDelta, ToolCall, ToolSpec
from shared.compat import timeout
from shared.messages import AgentComplete, AgentError, ChatMessage, ToolExecution
from shared.session.log import read_log
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
