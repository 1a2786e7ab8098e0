"""Sessions: consecutive seq, snapshots through the codec, pending questions, the
context budget and the handoff signals, tool rounds, framing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from pydantic import JsonValue

from shared.agent import (
    AgentConfig,
    AgentSession,
    MemoryRecorder,
    Tool,
    ToolBox,
    ToolCall,
    ToolContext,
)
from shared.agent.testing import ScriptedBackend
from shared.codec import decode, encode
from shared.messages import (
    AgentComplete,
    AgentError,
    AgentEventBase,
    AgentStart,
    AgentSwitch,
    ContentChunk,
    HandoffRequest,
    SessionSnapshot,
    ToolExecution,
    ToolResult,
)


async def ask(session: AgentSession, question: str) -> list[AgentEventBase]:
    return [event async for event in session.ask(question)]


async def reading(args: Mapping[str, JsonValue], ctx: ToolContext) -> JsonValue:
    return {"temperature": 71.5}


TOOLS = ToolBox([Tool("recent_readings", "latest readings", {"type": "object"}, reading)])


def session(backend: ScriptedBackend, **kw: object) -> AgentSession:
    return AgentSession("s1", gw="gw1", backend=backend, tools=TOOLS, **kw)  # type: ignore[arg-type]


async def test_snapshot_round_trip_keeps_every_message_in_order() -> None:
    s = session(ScriptedBackend(), epoch=7)
    for i in range(5):
        await ask(s, f"question {i}")
    s.memory["device"] = "pump1"
    wire = encode(s.to_snapshot(8, "cloud", "gw1"))
    snap = decode(wire, SessionSnapshot)
    assert (snap.epoch, snap.owner, snap.gw, snap.last_seq) == (8, "cloud", "gw1", s.seq)
    assert snap.messages == s.messages
    assert [m.content for m in snap.messages if m.role == "user"] == [
        f"question {i}" for i in range(5)
    ]
    resumed = AgentSession.from_snapshot(snap, backend=ScriptedBackend(), side="cloud")
    assert resumed.memory == {"device": "pump1", "agent": "edge:scripted"}
    events = await ask(resumed, "question 5")
    assert events[0].seq == snap.last_seq + 1  # no gap and no repeat across owners
    assert [e.seq for e in events] == list(range(snap.last_seq + 1, resumed.seq + 1))
    assert {e.epoch for e in events} == {8}
    switch = next(e for e in events if isinstance(e, AgentSwitch))
    assert (switch.from_agent, switch.to_agent) == ("edge:scripted", "cloud:scripted")
    assert [m.content for m in resumed.messages][: len(snap.messages)] == [
        m.content for m in snap.messages
    ]


async def test_a_tool_round_then_the_answer() -> None:
    backend = ScriptedBackend(
        ["Let me look. ", ToolCall("recent_readings", {"device": "pump1"})],
        ["It is ", "71.5 degrees."],
    )
    events = await ask(session(backend), "how hot is pump1?")
    assert [type(e) for e in events] == [
        AgentStart, ContentChunk, ToolExecution, ToolResult, ContentChunk, AgentComplete
    ]  # fmt: skip
    assert backend.streaming == 0  # the reply that ended in a call was closed, not left
    execution = next(e for e in events if isinstance(e, ToolExecution))
    result = next(e for e in events if isinstance(e, ToolResult))
    assert execution.call_id == result.call_id and result.result == {"temperature": 71.5}
    assert isinstance(events[-1], AgentComplete)
    assert events[-1].text == "Let me look. It is 71.5 degrees."
    second_call = backend.seen[1]
    assert second_call[-1].role == "tool" and "71.5" in second_call[-1].content


async def test_unknown_tool_is_an_answer_not_a_crash() -> None:
    backend = ScriptedBackend([ToolCall("launch_rocket", {})], ["Sorry."])
    events = await ask(session(backend), "launch")
    result = next(e for e in events if isinstance(e, ToolResult))
    assert not result.ok and "no tool 'launch_rocket'" in str(result.result)
    assert isinstance(events[-1], AgentComplete)


async def test_tokens_are_framed_into_few_chunks() -> None:
    tokens = [f"t{i} " for i in range(200)]
    s = session(ScriptedBackend(tokens), config=AgentConfig(chunk_chars=64, chunk_ms=10_000))
    events = await ask(s, "talk")
    chunks = [e for e in events if isinstance(e, ContentChunk)]
    assert "".join(c.text for c in chunks) == "".join(tokens)
    assert len(chunks) <= len("".join(tokens)) // 64 + 1
    assert all(len(c.text) >= 64 for c in chunks[:-1])
    assert isinstance(events[-1], AgentComplete) and events[-1].tokens == 200


async def test_fleet_question_asks_to_hand_off_to_the_cloud() -> None:
    events = await ask(session(ScriptedBackend()), "compare pump1 with the rest of the fleet")
    request = next(e for e in events if isinstance(e, HandoffRequest))
    assert request.to == "cloud" and "fleet" in request.reason
    assert isinstance(events[-1], AgentComplete)  # it still answers what it can
    cloud = AgentSession("s2", gw="gw1", backend=ScriptedBackend(), side="cloud")
    assert not any(isinstance(e, HandoffRequest) for e in await ask(cloud, "the fleet?"))


async def test_a_full_context_drops_old_turns_and_says_so() -> None:
    backend = ScriptedBackend(n_ctx=600)
    s = session(backend, config=AgentConfig(max_tokens=100, n_ctx=600))
    requests = []
    for i in range(12):
        events = await ask(s, f"question number {i} " + "x" * 80)
        requests += [e for e in events if isinstance(e, HandoffRequest)]
        assert isinstance(events[-1], AgentComplete)
    seen = backend.seen[-1]
    assert seen[0].role == "system" and "messages omitted" in seen[0].content
    assert '"question number 0' not in seen[0].content  # only the last few are quoted
    assert seen[-1].content.startswith("question number 11")
    assert len(seen) < len(s.messages)
    assert len(requests) == 1 and requests[0].reason.startswith("context_full")
    assert len(s.messages) == 24  # the session itself keeps everything


async def test_a_question_too_big_for_the_model_is_an_error_and_stays_pending() -> None:
    s = session(ScriptedBackend(n_ctx=300), config=AgentConfig(max_tokens=50))
    events = await ask(s, "y" * 5000)
    assert [type(e) for e in events] == [AgentStart, HandoffRequest, AgentError]
    error = events[-1]
    assert isinstance(error, AgentError) and error.code == "context_full" and error.retryable
    assert s.pending and s.pending[0]["text"] == "y" * 5000
    # The cloud's bigger model takes the session and answers what was left pending.
    cloud = AgentSession.from_snapshot(
        s.to_snapshot(2, "cloud"), backend=ScriptedBackend(n_ctx=1 << 16), side="cloud"
    )
    resumed = [e async for e in cloud.resume()]
    assert isinstance(resumed[-1], AgentComplete) and not cloud.pending
    assert resumed[0].seq == events[-1].seq + 1
    assert [m.role for m in cloud.messages] == ["user", "assistant"]


async def test_pending_question_of_an_interrupted_turn_is_answered_once_by_the_next_owner() -> None:
    backend = ScriptedBackend(["partial ", "answer"])
    backend.gate = asyncio.Event()
    s = session(backend, recorder=MemoryRecorder())
    stream = s.ask("what now?")
    assert isinstance(await anext(stream), AgentStart)
    pending_next = asyncio.ensure_future(anext(stream))
    await backend.waiting.wait()  # the turn is inside the backend, mid-reply
    snap = s.to_snapshot(3, "cloud")  # handoff mid-turn
    pending_next.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending_next
    await stream.aclose()
    assert backend.streaming == 0  # leaving the turn closed the backend's reply too
    assert snap.pending[0]["text"] == "what now?"
    cloud = AgentSession.from_snapshot(snap, backend=ScriptedBackend(["done"]), side="cloud")
    events = [e async for e in cloud.resume()]
    assert isinstance(events[-1], AgentComplete) and events[-1].text == "done"
    assert [m.content for m in cloud.messages] == ["what now?", "done"]


async def test_fence_refuses_a_lower_epoch() -> None:
    s = session(ScriptedBackend(), epoch=5)
    s.fence(6, "cloud")
    assert (s.epoch, s.owner) == (6, "cloud")
    with pytest.raises(ValueError, match="epoch 4 < held 6"):
        s.fence(4)
