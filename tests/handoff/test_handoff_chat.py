"""`baton chat`'s hook: `/handoff cloud`, questions answered in the cloud, `/handoff edge`.

What a user notices: the chat keeps its session object; after a trip to the cloud it
has every turn the cloud answered, its owner and epoch show the lease, and the session's
log on the hub holds every event once its repeats are dropped.
"""

from __future__ import annotations

from handoffkit import GW, WAIT_S, Sides

from cloud.sessions import SessionManager
from edge.handoff import chat_handoff
from shared.agent import AgentSession, AuditStream, MemoryOutbox, RuleBackend
from shared.compat import timeout
from shared.messages import AgentComplete, AgentEventBase
from shared.session import SeqGate
from shared.session.log import read_log
from shared.session.runner import hub_js


async def local(session: AgentSession, text: str) -> list[AgentEventBase]:
    async with timeout(WAIT_S):
        return [event async for event in session.ask(text)]


async def test_the_chat_session_goes_to_the_cloud_and_comes_back_whole(sides: Sides) -> None:
    leaf = await sides.connect(sides.edge_url)
    cloud = SessionManager(await sides.connect(sides.cloud_url), "r1", backend=RuleBackend())
    await cloud.__aenter__()
    sides.services.append(cloud)
    audit = AuditStream(MemoryOutbox(), leaf)  # the chat's engine publishes its own events
    await audit.start()
    session = AgentSession("s1", gw=GW, backend=RuleBackend(), side="edge", recorder=audit)
    handoff = chat_handoff(leaf, GW)
    sides.services += [audit, handoff]

    await local(session, "hello")
    await handoff.move(session, "cloud")
    assert session.owner == "cloud"
    async with timeout(WAIT_S):
        remote = [event async for event in handoff.ask_remote(session, "what can you do?")]
    assert isinstance(remote[-1], AgentComplete) and remote[-1].agent == "cloud:rules"
    assert remote[-1].epoch == session.epoch

    await handoff.move(session, "edge")
    assert session.owner == "edge" and session.epoch > remote[-1].epoch
    last = await local(session, "thanks")
    assert last[-1].epoch == session.epoch
    questions = [m.content for m in session.messages if m.role == "user"]
    assert questions == ["hello", "what can you do?", "thanks"]
    assert await audit.flush(timeout_s=WAIT_S)
    gate = SeqGate()
    logged = gate.offer(await read_log(hub_js(leaf), "s1", after=0))
    assert [e.seq for e in logged] == list(range(1, session.seq + 1)) and not gate.gap
