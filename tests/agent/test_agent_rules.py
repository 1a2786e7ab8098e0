"""The model-less agent answers the tool-backed questions from the gateway's real SQLite."""

from __future__ import annotations

from collections.abc import Sequence

from edge.agent import EdgeState, edge_tools
from shared.agent import NO_MODEL, AgentSession, MemoryRecorder, RuleBackend
from shared.messages import AgentComplete, AgentEventBase, ContentChunk, ToolExecution, ToolResult


def new_session(state: EdgeState, recorder: MemoryRecorder | None = None) -> AgentSession:
    return AgentSession(
        "s1", gw="gw1", backend=RuleBackend(), tools=edge_tools(state), epoch=1,
        recorder=recorder,
    )  # fmt: skip


async def ask(session: AgentSession, question: str) -> list[AgentEventBase]:
    return [event async for event in session.ask(question)]


def answer(events: Sequence[AgentEventBase]) -> str:
    complete = events[-1]
    assert isinstance(complete, AgentComplete), events
    return complete.text


def tool_of(events: Sequence[AgentEventBase]) -> ToolResult:
    return next(e for e in events if isinstance(e, ToolResult))


async def test_says_plainly_there_is_no_model_once_per_session(edge_state: EdgeState) -> None:
    session = new_session(edge_state)
    first = await ask(session, "what devices are there?")
    second = await ask(session, "what devices are there?")
    assert answer(first).startswith(NO_MODEL)
    assert NO_MODEL not in answer(second)
    assert "pump1, pump2" in answer(second)


async def test_current_reading_falls_back_to_the_latest_minute(edge_state: EdgeState) -> None:
    events = await ask(new_session(edge_state), "What is the temperature of pump1 now?")
    result = tool_of(events)
    assert result.tool == "recent_readings" and result.ok
    assert result.result["source"] == "rollup"  # type: ignore[index,call-overload]
    assert "temperature=61" in answer(events)  # the newest minute's mean


async def test_rollups_over_a_window(edge_state: EdgeState) -> None:
    events = await ask(new_session(edge_state), "average of pump1 over the last 2 hours")
    execution = next(e for e in events if isinstance(e, ToolExecution))
    assert execution.tool == "query_rollups"
    assert execution.args == {"device": "pump1", "minutes": 120}
    text = answer(events)
    assert "pump1, last 120 min" in text
    assert "min 60, max 121, 600 readings" in text


async def test_twin_shows_desired_against_applied(edge_state: EdgeState) -> None:
    text = answer(await ask(new_session(edge_state), "show the twin of pump1"))
    assert 'desired v3 {"speed": 40}' in text
    assert 'applied v2 {"speed": 35}' in text
    assert "not converged" in text


async def test_rules_with_their_limits(edge_state: EdgeState) -> None:
    text = answer(await ask(new_session(edge_state), "which rules are there?"))
    assert "overheat: temperature > 70 (re-arms past 65, 2 readings in a row) → fan" in text


async def test_why_a_reflex_fired(edge_state: EdgeState) -> None:
    events = await ask(new_session(edge_state), "why did the fan turn on for pump1?")
    assert tool_of(events).tool == "explain_decision"
    text = answer(events)
    assert "rule overheat v1 fired on pump1" in text
    assert "temperature=72.5 against the rule's limit temperature > 70" in text
    assert 'it sent fan {"on": true} (sent)' in text


async def test_focus_device_carries_over_between_questions(edge_state: EdgeState) -> None:
    session = new_session(edge_state)
    await ask(session, "show the twin of pump1")
    events = await ask(session, "and its rules?")
    assert "overheat" in answer(events)
    events = await ask(session, "what is the latest reading?")
    assert "pump1, latest minute" in answer(events)
    assert session.memory["device"] == "pump1"


async def test_unknown_device_lists_the_known_ones(edge_state: EdgeState) -> None:
    events = await ask(new_session(edge_state), "current temperature of boiler9")
    result = tool_of(events)
    assert not result.ok
    assert "known devices: pump1, pump2" in answer(events)


async def test_a_question_without_a_tool_gets_the_menu(edge_state: EdgeState) -> None:
    session = new_session(edge_state)
    await ask(session, "hello")  # the notice turn
    events = await ask(session, "tell me a joke")
    assert not any(isinstance(e, ToolExecution) for e in events)
    assert "Ask me about" in answer(events)


async def test_events_are_recorded_in_seq_order(edge_state: EdgeState) -> None:
    recorder = MemoryRecorder()
    session = new_session(edge_state, recorder)
    events = await ask(session, "why did the fan turn on for pump1?")
    events += await ask(session, "show the twin of pump1")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert recorder.events == events
    assert {e.epoch for e in events} == {1}
    assert any(isinstance(e, ContentChunk) for e in events)
    assert recorder.snapshots[-1].last_seq == len(events)  # a checkpoint after each turn
