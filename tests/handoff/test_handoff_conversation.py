"""A conversation moves edge -> cloud -> edge and keeps every message, in order, once.

What a user notices: they keep talking at the gateway while the session runs in the
cloud (its bigger model answers), and when it comes back nothing is missing or repeated.
"""

from __future__ import annotations

from handoffkit import GW, WAIT_S, Sides, conversation, start_session, turn

from cloud.sessions import SessionManager
from edge.handoff import EdgeHandoff, HandoffConfig, edge_loader
from shared.agent import AgentSession, RuleBackend
from shared.compat import timeout
from shared.messages import AgentComplete
from shared.session.log import read_log
from shared.session.runner import hub_js

HANDOFF_EVENTS = ["handoff_request", "handoff_snapshot", "handoff_accept", "handoff_complete"]


async def test_edge_cloud_edge_keeps_the_conversation_in_order(sides: Sides) -> None:
    edge = await sides.edge()
    cloud = await sides.cloud()
    await start_session(edge)
    first = await turn(edge, "s1", "one")

    to_cloud = await edge.handoff("s1", "cloud", reason="test")
    assert to_cloud.ok, to_cloud.error
    assert (to_cloud.owner, to_cloud.epoch > first[-1].epoch) == ("cloud:r1", True)
    assert [step.name for step in to_cloud.steps] == [
        "quiesce", "request", "snapshot", "prepare", "flip", "commit",
    ]  # fmt: skip
    second = await turn(edge, "s1", "two")  # asked at the gateway, answered in the cloud
    assert {event.epoch for event in second} == {to_cloud.epoch}
    assert any("two" in str(messages) for messages in sides.model("cloud:r1").seen)

    back = await cloud.handoff("s1", "edge", reason="test")
    assert (back.ok, back.owner, back.epoch > to_cloud.epoch) == (True, f"edge:{GW}", True)
    third = await turn(edge, "s1", "three")
    assert isinstance(third[-1], AgentComplete) and third[-1].epoch == back.epoch

    assert conversation(edge, "s1") == [
        ("user", "one"), ("assistant", "echo: one"),
        ("user", "two"), ("assistant", "echo: two"),
        ("user", "three"), ("assistant", "echo: three"),
    ]  # fmt: skip
    log = await read_log(hub_js(edge.nc), "s1", after=0)
    assert [event.seq for event in log] == list(range(1, len(log) + 1))
    epochs = [event.epoch for event in log]
    assert epochs == sorted(epochs)
    types = [event.type for event in log]
    assert [t for t in types if t.startswith("handoff")] == HANDOFF_EVENTS * 2
    assert edge.runners["s1"].epoch == back.epoch


async def test_the_real_engine_with_its_rule_backend_keeps_the_conversation(sides: Sides) -> None:
    edge_nc = await sides.connect(sides.edge_url)
    cloud_nc = await sides.connect(sides.cloud_url)
    edge = EdgeHandoff(edge_nc, GW, edge_loader(RuleBackend()), config=HandoffConfig(dwell_s=0.0))
    cloud = SessionManager(cloud_nc, "r1", backend=RuleBackend())
    for service in (edge, cloud):
        await service.__aenter__()
        sides.services.append(service)
    await edge.open(AgentSession("s1", gw=GW, backend=RuleBackend(), side="edge"), "s1")

    answers = [await turn(edge.host, "s1", "hello")]
    assert (await edge.handoff("s1", "cloud")).ok
    answers.append(await turn(edge.host, "s1", "what can you do?"))
    assert (await cloud.request_handoff("s1", "edge")).ok
    answers.append(await turn(edge.host, "s1", "thanks"))

    agents = [events[-1].agent for events in answers]
    assert agents == ["edge:rules", "cloud:rules", "edge:rules"]
    assert all(isinstance(events[-1], AgentComplete) for events in answers)
    said = conversation(edge.host, "s1")
    assert [role for role, _ in said] == ["user", "assistant"] * 3
    assert [text for role, text in said if role == "user"] == [
        "hello",
        "what can you do?",
        "thanks",
    ]
    async with timeout(WAIT_S):  # the cloud's own lease board hears of it too
        await cloud.host.board.wait(
            "s1", lambda lease: lease is not None and lease.value.side == "edge"
        )
    assert [info.owner for info in cloud.sessions()] == [f"edge:{GW}"]
