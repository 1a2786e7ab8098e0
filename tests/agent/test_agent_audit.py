"""Every session event reaches the hub's SESSIONS stream on `session.<id>.ev`, once, in
order; from the edge through the leaf, kept in SQLite while the hub is away."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from edge.agent import EdgeState, SessionStore, edge_tools
from edge.store import AsyncStore, EdgeStore
from shared import subjects
from shared.agent import AgentSession, AuditStream, MemoryOutbox, RuleBackend
from shared.agent.testing import ScriptedBackend
from shared.codec import decode
from shared.messages import AgentEventBase
from shared.natsrun import LocalTopology, NatsServer
from shared.streams import ensure_hub


@pytest.fixture
async def hub_nc(hub: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(hub.client_url)
    await ensure_hub(nc.jetstream())
    yield nc
    await nc.close()


async def stored_events(js: JetStreamContext, session: str) -> list[tuple[str, AgentEventBase]]:
    """(Nats-Msg-Id, event) of every message on `session.<id>.ev`, in stream order."""
    sub = await js.pull_subscribe(
        subjects.session_events(session), stream=subjects.SESSIONS_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE),
    )  # fmt: skip
    info = await js.stream_info(subjects.SESSIONS_STREAM)
    msgs = await sub.fetch(info.state.messages, timeout=5) if info.state.messages else []
    await sub.unsubscribe()
    out = []
    for msg in msgs:
        event = decode(msg.data)
        assert isinstance(event, AgentEventBase)
        out.append(((msg.headers or {}).get("Nats-Msg-Id", ""), event))
    return out


def forget_published(store: EdgeStore) -> None:
    with store.db.conn:
        store.db.execute("UPDATE agent_events SET published = 0")


async def test_events_are_appended_to_the_session_subject(hub_nc: Client) -> None:
    outbox = MemoryOutbox()
    audit = AuditStream(outbox, hub_nc)
    await audit.start()
    try:
        session = AgentSession(
            "s1", gw="gw1", backend=ScriptedBackend(["hello ", "there"]), recorder=audit
        )
        events = [e async for e in session.ask("hi")]
        events += [e async for e in session.ask("again")]
        assert await audit.flush(timeout_s=10)
    finally:
        await audit.aclose()
        await audit.aclose()
    stored = await stored_events(hub_nc.jetstream(), "s1")
    assert [event for _, event in stored] == events
    assert [msg_id for msg_id, _ in stored] == [f"s1/{e.seq}" for e in events]
    assert audit.published == len(events) and not await outbox.pending(10)


async def test_the_edge_keeps_events_while_the_hub_is_away_and_sends_them_once(
    topology: LocalTopology, edge_store: AsyncStore, edge_state: EdgeState
) -> None:
    hub = await nats.connect(topology.hub.client_url)
    leaf = await nats.connect(topology.leaf.client_url)
    try:
        await ensure_hub(hub.jetstream())
        await hub.close()
        store = await SessionStore.open(edge_store)
        audit = AuditStream(store, leaf)
        await audit.start()
        session = AgentSession(
            "s9", gw="gw1", backend=RuleBackend(), tools=edge_tools(edge_state), recorder=audit
        )
        first = [e async for e in session.ask("which rules are there?")]
        assert await audit.flush(timeout_s=10)  # through the leaf to domain "hub"

        await topology.hub.stop()
        second = [e async for e in session.ask("show the twin of pump1")]
        assert not await audit.flush(timeout_s=0.5)
        assert await store.unpublished() == len(second)  # kept on the gateway's disk

        await topology.hub.start()
        await topology.wait_linked()
        assert await audit.flush(timeout_s=20)
        assert await store.unpublished() == 0
        # A PubAck lost after the hub stored the event: the resend is stored once.
        await edge_store.call(forget_published)
        assert await audit.flush(timeout_s=10)
        await audit.aclose()

        hub = await nats.connect(topology.hub.client_url)
        stored = await stored_events(hub.jetstream(), "s9")
        assert [event for _, event in stored] == first + second
        assert await store.events("s9") == first + second
        saved = await store.load("s9")
        assert saved is not None and saved.messages == session.messages
        assert saved.last_seq == session.seq
    finally:
        await leaf.close()
        await hub.close()
