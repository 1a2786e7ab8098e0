"""Actuation from the agent goes through the edge's guard and carries the session's epoch."""

from __future__ import annotations

from typing import Any

from edge.agent import EdgeState, edge_tools
from edge.ingest.memory import MemorySink
from edge.store import AsyncStore, AuditBatch, EdgeStore
from shared.agent import AgentSession, RuleBackend
from shared.codec import decode
from shared.messages import AgentEventBase, Command, ToolResult


def session_at(state: EdgeState, epoch: int, sid: str = "s1") -> AgentSession:
    return AgentSession(sid, gw="gw1", backend=RuleBackend(), tools=edge_tools(state), epoch=epoch)


async def result_of(session: AgentSession, question: str) -> ToolResult:
    events: list[AgentEventBase] = [e async for e in session.ask(question)]
    return next(e for e in events if isinstance(e, ToolResult))


def details(result: ToolResult) -> dict[str, Any]:
    assert isinstance(result.result, dict)
    return result.result


async def test_command_carries_the_epoch_and_session(
    edge_state: EdgeState, edge_store: AsyncStore, sink: MemorySink
) -> None:
    result = await result_of(session_at(edge_state, 4), "turn on the fan on pump1")
    assert result.ok, result.result
    cmd = decode(sink.sent[0].payload, Command)
    assert (cmd.device, cmd.action, cmd.params) == ("pump1", "fan", {"on": True})
    assert (cmd.epoch, cmd.session, cmd.source) == (4, "s1", "session:s1")
    assert details(result)["epoch"] == 4
    actions = await edge_store.call(EdgeStore.actions, "pump1", 1)
    assert (actions[0]["cmd_id"], actions[0]["status"], actions[0]["epoch"]) == (
        cmd.cmd_id, "sent", 4,
    )  # fmt: skip
    assert (await edge_store.call(EdgeStore.fencing))["s1"] == 4


async def test_stale_epoch_is_refused(
    edge_state: EdgeState, edge_store: AsyncStore, sink: MemorySink
) -> None:
    await edge_store.write(AuditBatch(fencing={"s1": 5}))  # a newer owner has acted
    result = await result_of(session_at(edge_state, 4), "turn on the fan on pump1")
    assert not result.ok
    assert details(result)["reason"] == "stale_epoch"
    assert not sink.sent
    actions = await edge_store.call(EdgeStore.actions, "pump1", 1)
    assert (actions[0]["status"], actions[0]["reason"]) == ("refused", "stale_epoch")


async def test_a_paused_old_owner_is_fenced_out_by_the_new_one(
    edge_state: EdgeState, sink: MemorySink
) -> None:
    old, new = session_at(edge_state, 2), session_at(edge_state, 3)
    assert (await result_of(old, "turn on the fan on pump1")).ok
    assert (await result_of(new, "turn off the fan on pump1")).ok
    late = await result_of(old, "turn on the fan on pump1")  # the zombie wakes up
    assert details(late)["reason"] == "stale_epoch"
    assert [decode(s.payload, Command).epoch for s in sink.sent] == [2, 3]


async def test_the_guard_enforces_allow_list_and_bounds(
    edge_state: EdgeState, sink: MemorySink
) -> None:
    session = session_at(edge_state, 1)
    assert details(await result_of(session, "turn on the heater on pump1"))["reason"] == (
        "not_allowed"
    )
    too_far = await result_of(session, "actuate valve on pump1 opening=150")
    assert details(too_far)["reason"] == "out_of_bounds"
    assert (await result_of(session, "actuate valve on pump1 opening=40")).ok
    assert [decode(s.payload, Command).params for s in sink.sent] == [{"opening": 40}]


async def test_without_a_broker_actuation_says_it_is_unavailable(
    edge_store: AsyncStore, edge_state: EdgeState
) -> None:
    offline = EdgeState("gw1", edge_store, rules=edge_state.rules)
    result = await result_of(session_at(offline, 1), "turn on the fan on pump1")
    assert not result.ok
    assert "actuation is unavailable" in details(result)["error"]
