"""A question too big for the gateway's model, and the exchanges after it.

What a user notices: they ask something the local model cannot hold; the session moves
to the cloud (because the agent asked to, or because someone moved it), the cloud
answers it and the next questions, and when the session comes back to the gateway the
whole conversation is there: every question in order, each answered once. A question
no model could answer (its error said so) is left where it was asked: it never takes
the exchanges after it out of the conversation.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from handoffkit import GW, WAIT_S, Model, Sides, conversation, start_session, turn

from shared.agent import AgentSession
from shared.agent.testing import ScriptedBackend
from shared.compat import timeout
from shared.messages import (
    AgentComplete,
    AgentError,
    AgentEventBase,
    ChatMessage,
    HandoffRequest,
    SessionSnapshot,
)
from shared.session import SessionHost, SessionRunner
from shared.session.log import read_log
from shared.session.runner import hub_js

# The edge model's window: room for short questions, not for BIG (the reply takes half).
SMALL_CTX = 256
BIG = "please read this maintenance log and tell me what went wrong: " + "x" * 600
LATER = ["and the fan?", "and the pump?"]
LAST = "thanks, anything else?"
CLOUD = "cloud:cloud-model"

How = Literal["agent", "explicit"]


class Completions:
    """Every `agent_complete` of s1 a host sees (its runner's, then its feed's)."""

    def __init__(self, host: SessionHost) -> None:
        self.seen: list[AgentComplete] = []
        self._heard = asyncio.Event()
        self.undo = host.watch("s1", self._on)

    def _on(self, event: AgentEventBase) -> None:
        if isinstance(event, AgentComplete):
            self.seen.append(event)
            self._heard.set()

    async def first(self) -> AgentComplete:
        async with timeout(WAIT_S):
            while not self.seen:
                self._heard.clear()
                await self._heard.wait()
        return self.seen[0]


def accept_once(edge: SessionHost) -> list[HandoffRequest]:
    """The edge's policy: yes to the agent's first handoff request only (back on the
    gateway its model still cannot see BIG and asks again; that one is declined)."""
    asked: list[HandoffRequest] = []

    def hook(runner: SessionRunner, request: HandoffRequest) -> bool:
        asked.append(request)
        return len(asked) == 1

    edge.on_agent_request = hook
    return asked


async def ask_big(edge: SessionHost, how: How) -> AgentComplete:
    """BIG, asked at the gateway: the cloud's answer to it."""
    if how == "agent":
        asked = accept_once(edge)
        events = await turn(edge, "s1", BIG)  # goes on in the cloud, ends with its answer
        assert [r.reason.split(":")[0] for r in asked] == ["context_full"]
        assert not any(isinstance(event, AgentError) for event in events)
        answer = events[-1]
    else:
        await too_big_here(edge)
        completions = Completions(edge)
        try:
            assert (await edge.handoff("s1", "cloud", reason="test")).ok
            answer = await completions.first()  # the cloud answers what was left pending
        finally:
            completions.undo()
    assert isinstance(answer, AgentComplete)
    return answer


async def too_big_here(host: SessionHost) -> None:
    error = (await turn(host, "s1", BIG))[-1]
    assert isinstance(error, AgentError)
    assert (error.code, error.retryable) == ("context_full", True)


async def small_models(sides: Sides, *owners: str) -> tuple[SessionHost, SessionHost, Model]:
    """Both hosts; the models of `owners` with SMALL_CTX (the edge's is returned)."""
    for owner in owners:
        name = f"{owner.split(':')[0]}-model"
        sides.models[owner] = Model(n_ctx=SMALL_CTX, name=name)
    edge, cloud = await sides.edge(), await sides.cloud()
    return edge, cloud, sides.models[f"edge:{GW}"]


async def hand_back_and_ask_last(edge: SessionHost, cloud: SessionHost) -> None:
    back = await cloud.handoff("s1", "edge", reason="test")
    assert (back.ok, back.owner) == (True, f"edge:{GW}"), back.error
    last = await turn(edge, "s1", LAST)
    assert isinstance(last[-1], AgentComplete) and last[-1].agent == "edge:edge-model"
    assert edge.runners["s1"].agent.pending == []


async def check_said(host: SessionHost, said: list[str], answered: list[str]) -> None:
    """The owner's conversation is `said` in order, each of `answered` followed by its
    answer (the others by nothing); the hub's log holds each answer once, in order."""
    expected: list[tuple[str, str]] = []
    for text in said:
        expected.append(("user", text))
        if text in answered:
            expected.append(("assistant", f"echo: {text}"))
    assert conversation(host, "s1") == expected
    await host.runners["s1"].log.flush()  # the last answer is live before it is durable
    log = await read_log(hub_js(host.nc), "s1", after=0)
    assert [event.seq for event in log] == list(range(1, len(log) + 1))
    epochs = [event.epoch for event in log]
    assert epochs == sorted(epochs)
    completed = [event.text for event in log if isinstance(event, AgentComplete)]
    assert completed == [f"echo: {text}" for text in answered]


@pytest.mark.parametrize("how", ["agent", "explicit"])
async def test_a_question_over_the_edge_budget_is_answered_once_in_order(
    hub_sides: Sides, how: How
) -> None:
    edge, cloud, edge_model = await small_models(hub_sides, f"edge:{GW}")
    await start_session(edge, model=edge_model)

    big = await ask_big(edge, how)
    assert (big.agent, big.text) == (CLOUD, f"echo: {BIG}")
    later = [await turn(edge, "s1", text) for text in LATER]  # answered in the cloud
    assert [events[-1].agent for events in later] == [CLOUD, CLOUD]
    await hand_back_and_ask_last(edge, cloud)

    said = [BIG, *LATER, LAST]
    await check_said(edge, said, answered=said)


async def test_a_question_no_model_holds_keeps_the_later_exchanges(hub_sides: Sides) -> None:
    # The reported bug: BIG stayed pending while the cloud answered LATER, and on the
    # way back the edge's resume() restarted it, cutting LATER out of the conversation.
    edge, cloud, edge_model = await small_models(hub_sides, f"edge:{GW}", "cloud:r1")
    await start_session(edge, model=edge_model)
    await too_big_here(edge)
    completions = Completions(edge)
    assert (await edge.handoff("s1", "cloud", reason="test")).ok
    later = [await turn(edge, "s1", text) for text in LATER]
    completions.undo()
    assert [events[-1].agent for events in later] == [CLOUD, CLOUD]
    assert [c.text for c in completions.seen] == [f"echo: {text}" for text in LATER]
    await hand_back_and_ask_last(edge, cloud)

    await check_said(edge, [BIG, *LATER, LAST], answered=[*LATER, LAST])


async def test_a_question_asked_after_it_at_the_gateway_stays(hub_sides: Sides) -> None:
    # The user asks on at the gateway before the session moves: the cloud does not go
    # back to BIG (that would cut "locally?" out, or answer BIG out of order).
    edge, cloud, edge_model = await small_models(hub_sides, f"edge:{GW}")
    await start_session(edge, model=edge_model)
    await too_big_here(edge)
    assert isinstance((await turn(edge, "s1", "locally?"))[-1], AgentComplete)
    assert (await edge.handoff("s1", "cloud", reason="test")).ok
    later = [await turn(edge, "s1", text) for text in LATER]
    assert [events[-1].agent for events in later] == [CLOUD, CLOUD]
    await hand_back_and_ask_last(edge, cloud)

    answered = ["locally?", *LATER, LAST]
    await check_said(edge, [BIG, *answered], answered=answered)


async def test_a_snapshot_with_an_overtaken_pending_question_resumes_nothing() -> None:
    # What a hub may still hold from before: a pending question with later turns after it.
    said = [("user", BIG), ("user", "a"), ("assistant", "echo: a")]
    snapshot = SessionSnapshot(
        session="s1", gw=GW, epoch=3, owner="edge", last_seq=9,
        messages=[ChatMessage(role=role, content=text) for role, text in said],
        pending=[{"kind": "ask", "text": BIG, "index": 0}],
    )  # fmt: skip
    agent = AgentSession.from_snapshot(snapshot, backend=ScriptedBackend(), side="edge")
    assert [event async for event in agent.resume()] == []
    assert ([(m.role, m.content) for m in agent.messages], agent.pending) == (said, [])
    assert agent.seq == 9
