"""The edge daemon hosts agent sessions itself, and `baton chat` is its client.

What an operator notices: the daemon is ready with the hub down and hosts sessions once
the hub is up (its health says which), opening its local agent only when a session
needs it; a chat opens its session in the daemon, asks, hands it to the cloud and back,
and when the chat exits the session is still the daemon's, so the cloud API can still
hand it over; `--session` continues it; a chat without a daemon still runs its session
itself, and what it could not send the daemon sends once it attaches.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from handoffkit import GW, TTL_S, WAIT_S, Sides
from nats.aio.msg import Msg

from cloud.api.app import create_app
from cloud.api.deps import ApiDeps
from cloud.api.events import EventBus
from cloud.api.metrics import CloudMetrics
from cloud.readmodel.db import ReadModel
from cloud.sessions import SessionManager, start_sessions
from edge.agent import SessionStore
from edge.agent.cli import run_chat
from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.handoff import SysfsDeviceState, chat_handoff
from edge.ingest.memory import MemorySink, MemorySource
from edge.store import AsyncStore
from shared import streams, subjects
from shared.agent import AgentConfig, AgentSession, RuleBackend
from shared.codec import decode
from shared.compat import timeout
from shared.messages import AgentEventBase
from shared.natsrun import LocalTopology
from shared.session import HandoffAborted, Owner
from shared.session.control import OpenReply

# The daemon retries the hub at most every few seconds; the leaf node link re-dials in one.
ATTACH_S = 30.0
STATUS = re.compile(r"\[session (\S+) · owner (\w+) · epoch (\d+)")

DaemonFactory = Callable[..., Awaitable[EdgeDaemon]]


class NoDesired:
    async def set(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")


def edge_config(tmp_path: Path, topology: LocalTopology, **handoff: Any) -> EdgeConfig:
    return EdgeConfig.model_validate({
        "gateway": GW,
        "nats_url": topology.leaf.client_url,
        "state_dir": tmp_path / "edge-state",
        "http": {"port": 0},
        "downlink": {"enabled": False},
        "store": {"flush_interval_ms": 20},
        "handoff": {"poll_s": 0.2, "thermal_zone": None, **handoff},
        "rules": [{"name": "overheat", "metric": "temperature", "above": 70.0,
                   "action": "fan", "params": {"on": True}}],
    })  # fmt: skip


@pytest.fixture
async def daemon(tmp_path: Path, topology: LocalTopology) -> AsyncIterator[DaemonFactory]:
    started: list[EdgeDaemon] = []

    async def start(**handoff: Any) -> EdgeDaemon:
        d = EdgeDaemon(edge_config(tmp_path, topology, **handoff))
        await d.start()
        started.append(d)
        return d

    yield start
    for d in reversed(started):
        await d.aclose()
        assert d.handoff is not None and d.handoff.handoff is None


async def ensure_hub(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await streams.ensure_hub(nc.jetstream(domain="hub"))
    finally:
        await nc.close()


async def attached(d: EdgeDaemon) -> None:
    assert d.handoff is not None
    async with timeout(ATTACH_S):
        await d.handoff.attached.wait()


async def chat(
    capsys: pytest.CaptureFixture[str], config: EdgeConfig, lines: str, session: str | None = None
) -> tuple[str, list[tuple[str, str, int]]]:
    """What `baton chat` printed, and its status lines (session, owner, epoch)."""
    async with timeout(WAIT_S * 4):
        await run_chat(config, AgentConfig(), session_id=session, stdin=io.StringIO(lines))
    out = capsys.readouterr().out
    return out, [(m[1], m[2], int(m[3])) for m in STATUS.finditer(out)]


@pytest.fixture
async def api(sides: Sides) -> AsyncIterator[tuple[httpx.AsyncClient, SessionManager]]:
    """The cloud replica `r1` (rule backend) and its HTTP API."""
    manager = await start_sessions(await sides.connect(sides.cloud_url), "r1",
                                   backend=RuleBackend())  # fmt: skip
    sides.services.append(manager)
    readmodel = ReadModel(None)
    deps = ApiDeps(replica="r1", readmodel=readmodel, desired=NoDesired(), bus=EventBus(),
                   metrics=CloudMetrics("r1"), health=dict, sessions=manager)  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        yield client, manager
    readmodel.close()


async def test_the_daemon_is_ready_with_the_hub_down_and_hosts_sessions_once_it_is_up(
    topology: LocalTopology, daemon: DaemonFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    await topology.hub.stop()
    d = await daemon()
    assert d.ready
    assert (d.stats().handoff, d.health()["handoff"]) == ("waiting for hub", "waiting for hub")
    assert "baton_edge_sessions_hosted 0.0" in d.collector.exposition().decode()

    await topology.hub.start()
    await topology.wait_linked()
    await ensure_hub(topology.hub.client_url)
    await attached(d)
    assert (d.stats().handoff, d.health()["handoff"]) == ("attached", "attached")
    assert "baton_edge_sessions_hosted 1.0" in d.collector.exposition().decode()
    assert d.handoff.agent is None  # listening only: the agent opens with a session

    out, statuses = await chat(capsys, d.config, "which rules are there?\n/quit\n")
    assert d.handoff.agent is not None
    assert "lives in the edge daemon of gw1" in out
    assert "overheat: temperature > 70 → fan" in out
    session = statuses[0][0]
    assert d.stats().sessions == 1 and session in d.handoff.handoff.host.runners  # type: ignore[union-attr]


async def test_a_chat_opens_its_session_in_the_daemon_which_keeps_it_after_the_chat(
    sides: Sides,
    api: tuple[httpx.AsyncClient, SessionManager],
    daemon: DaemonFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, _ = api
    d = await daemon()
    await attached(d)
    out, statuses = await chat(capsys, d.config, "which rules are there?\n/handoff cloud\n"
                               "what can you do?\n/handoff edge\nthanks\n/quit\n")  # fmt: skip
    session = statuses[0][0]
    assert [owner for _, owner, _ in statuses] == ["edge", "edge", "cloud", "cloud", "edge", "edge"]
    epochs = [epoch for _, _, epoch in statuses]
    assert epochs == sorted(epochs) and epochs[-1] > epochs[0]
    assert "agent> Reflex rules in force:" in out and "handoff failed" not in out

    # The chat has gone; the session is still the daemon's, and the API can move it.
    host = d.handoff.handoff.host  # type: ignore[union-attr]
    lease = host.lease(session)
    assert session in host.runners and lease is not None and lease.value.owner == f"edge:{GW}"
    moved = await client.post(f"/api/sessions/{session}/handoff", json={"to": "cloud"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["owner"], moved.json()["epoch"] > epochs[-1]) == ("cloud:r1", True)

    # `baton chat --session` continues it where it is now: in the cloud.
    out, statuses = await chat(capsys, d.config, "and now?\n/handoff edge\n/quit\n", session)
    assert [(s, owner) for s, owner, _ in statuses] == [
        (session, "cloud"), (session, "cloud"), (session, "edge"),
    ]  # fmt: skip
    assert "owner cloud" in out and "handoff failed" not in out
    asked = [m.content for m in host.runners[session].agent.messages if m.role == "user"]  # type: ignore[attr-defined]
    assert asked == ["which rules are there?", "what can you do?", "thanks", "and now?"]


async def test_a_restarted_daemon_takes_its_session_back_and_the_chat_continues_it(
    sides: Sides, daemon: DaemonFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await daemon(lease_ttl_s=TTL_S)
    await attached(first)
    _, statuses = await chat(capsys, first.config, "which rules are there?\n/quit\n")
    session, _, epoch = statuses[0]
    await first.aclose()  # drains; its lease stays until it runs out

    again = await daemon(lease_ttl_s=TTL_S)
    await attached(again)
    out, statuses = await chat(capsys, again.config, "and the twin of pump1?\n/quit\n", session)
    assert statuses[0][:2] == (session, "edge") and statuses[0][2] > epoch, out
    host = again.handoff.handoff.host  # type: ignore[union-attr]
    asked = [m.content for m in host.runners[session].agent.messages if m.role == "user"]  # type: ignore[attr-defined]
    assert asked == ["which rules are there?", "and the twin of pump1?"]


async def test_a_chat_without_a_daemon_runs_its_session_itself(
    sides: Sides,
    api: tuple[httpx.AsyncClient, SessionManager],
    tmp_path: Path,
    topology: LocalTopology,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = edge_config(tmp_path, topology)
    out, statuses = await chat(capsys, config, "which rules are there?\n/handoff cloud\n"
                               "what can you do?\n/handoff edge\n/quit\n")  # fmt: skip
    assert "This chat runs the session itself: no edge daemon hosts sessions here." in out
    assert [owner for _, owner, _ in statuses] == ["edge", "edge", "cloud", "cloud", "edge"]
    assert "agent> Reflex rules in force:" in out and "handoff failed" not in out


async def test_a_bad_open_request_is_refused_with_a_reason(
    sides: Sides, daemon: DaemonFactory
) -> None:
    d = await daemon()
    await attached(d)
    leaf = await sides.connect(sides.edge_url)
    answer = await leaf.request(Owner("edge", GW).inbox("open"), b"\xc1", timeout=WAIT_S)
    reply = OpenReply.decode(answer.data)
    assert not reply.ok and reply.reason.startswith("bad open:")
    assert d.stats().sessions == 0


@pytest.mark.parametrize("enabled", [True, False])
async def test_without_a_leaf_or_when_disabled_sessions_are_not_hosted(
    tmp_path: Path, enabled: bool
) -> None:
    config = EdgeConfig.model_validate({
        "gateway": GW, "state_dir": tmp_path / "edge-state", "http": {"enabled": False},
        "uplink": {"enabled": False}, "downlink": {"enabled": False},
        "handoff": {"enabled": enabled},
    })  # fmt: skip
    async with EdgeDaemon(config, source=MemorySource(), sink=MemorySink()) as d:
        assert d.handoff is not None
        assert (d.stats().handoff, d.health()["handoff"]) == ("off", "off")
        assert d.handoff.reason == (
            "no leaf connection" if enabled else "[handoff] enabled = false"
        )
        assert "sessions_hosted" not in d.collector.exposition().decode()


async def test_the_device_state_follows_whether_the_uplink_reaches_the_hub() -> None:
    hub = [False]
    async with SysfsDeviceState(None, None, 0.01, uplink=lambda: hub[0]) as device:
        assert device.signals.uplink is False
        changed = device.changed()
        hub[0] = True
        async with timeout(WAIT_S):
            await changed.wait()
        assert device.signals.uplink is True


async def test_a_chat_hosting_its_own_session_does_not_answer_beside_a_daemon(
    sides: Sides, daemon: DaemonFactory
) -> None:
    d = await daemon()
    await attached(d)
    leaf = await sides.connect(sides.edge_url)
    session = AgentSession("s-own", gw=GW, backend=RuleBackend(), side="edge")
    handoff = chat_handoff(leaf, GW)  # a chat that started while the daemon waited for the hub
    sides.services.append(handoff)
    with pytest.raises(HandoffAborted, match="the edge daemon hosts this gateway's sessions"):
        await handoff.move(session, "cloud")
    assert session.owner == "edge" and d.stats().sessions == 0


async def test_events_a_chat_left_unsent_reach_the_hub_once_the_daemon_attaches(
    sides: Sides, tmp_path: Path, topology: LocalTopology
) -> None:
    config = edge_config(tmp_path, topology)
    store = await AsyncStore.open(config.state_dir, max_quarantine=10, max_decisions=10)
    try:  # a chat that ran its session itself and never reached the hub
        session = AgentSession("s-left", gw=GW, backend=RuleBackend(), side="edge",
                               recorder=await SessionStore.open(store))  # fmt: skip
        left = [event.seq async for event in session.ask("which rules are there?")]
    finally:
        await store.aclose()
    hub = await sides.connect(sides.cloud_url)
    arrived: list[int] = []
    all_there = asyncio.Event()

    async def on_event(msg: Msg) -> None:
        event = decode(msg.data)
        assert isinstance(event, AgentEventBase)
        arrived.append(event.seq)
        if len(arrived) == len(left):
            all_there.set()

    await hub.subscribe(subjects.session_events("s-left"), cb=on_event)
    await hub.flush()
    d = EdgeDaemon(config)
    await d.start()
    try:
        await attached(d)
        assert d.handoff is not None and d.handoff.agent is not None
        async with timeout(WAIT_S * 4):
            await all_there.wait()
    finally:
        await d.aclose()
    assert arrived == left


async def test_a_gateway_with_a_model_loads_it_when_it_attaches(
    tmp_path: Path, topology: LocalTopology
) -> None:
    """A GGUF load takes seconds on a Pi: done at attach, not in the first handoff back
    from the cloud, which must load the snapshot within the prepare timeout."""
    pytest.importorskip("llama_cpp")
    from shared.agent.tinygguf import write_tiny_llama

    model = write_tiny_llama(tmp_path / "tiny.gguf", words=("pump", "fan"), seed=1)
    config = edge_config(tmp_path, topology)
    config = config.model_copy(
        update={"agent": config.agent.model_copy(update={"model_path": model})}
    )
    await ensure_hub(topology.hub.client_url)
    d = EdgeDaemon(config)
    await d.start()
    try:
        await attached(d)
        assert d.handoff is not None and d.handoff.agent is not None
        assert d.handoff.agent.backend.name != RuleBackend().name
    finally:
        await d.aclose()
