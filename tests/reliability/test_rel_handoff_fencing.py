"""Issue 10 item 9: handoffs whose new owner is paused past its lease, over and over.

Each cycle, on a real hub:

1. the edge hands session s1 to the cloud (timed: the handoff figures);
2. the cloud starts answering a question, and its whole process is frozen mid-answer (its
   event loop is held in place, as SIGSTOP holds a process: no renewals, no reads, no
   timers; `relkit_handoff.PausableLoop`);
3. its lease runs out; the edge takes the session back (timed) and answers the question
   itself, at a higher epoch;
4. the cloud is let go. It wakes up believing it is mid-answer and tries to act: its
   answer goes on, and the test makes it emit, append to the session log and actuate at
   its old epoch.

Every one of those late effects must be refused (the runner's own lease check, the log's
compare-and-set, the actuation guard's epoch fence), and the session log, the record of
what was accepted, must show one owner at a time: epochs never go back along it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from relkit_figures import Figures
from relkit_handoff import PausableLoop

from edge.actuate import ActuationGuard, GuardPolicy
from edge.config import ActuateConfig
from edge.errors import GuardRefused
from shared import streams
from shared.codec import encode
from shared.compat import timeout
from shared.messages import AgentComplete, AgentEventBase, Command, ContentChunk, now_ms
from shared.natsrun import NatsServer
from shared.natsrun.monitor import poll_until
from shared.session import LeaseLost, NotOwner, Owner, SessionHost, SessionRunner
from shared.session.log import EventLog, log_tail, read_log
from shared.session.runner import hub_js
from tests.handoff.handoffkit import SETTINGS, Model, loader, start_session

GW = "gw1"
SESSION = "s1"
# A short lease keeps each cycle short; the heartbeat stays well inside it.
TTL_S = 0.6
SETTINGS_FAST = dataclasses.replace(SETTINGS, ttl_s=TTL_S, heartbeat_s=0.2, turn_wait_s=5.0)
WAIT_S = 30.0
EDGE, CLOUD = f"edge:{GW}", "cloud:r1"


@dataclasses.dataclass
class Parties:
    edge: SessionHost
    cloud: SessionHost
    cloud_loop: PausableLoop
    cloud_model: Model
    hub_nc: Client


@pytest.fixture
async def parties(hub: NatsServer) -> AsyncIterator[Parties]:
    """The edge on the test's loop; the cloud replica on a loop of its own, to freeze."""
    hub_nc = await nats.connect(hub.client_url)
    await streams.ensure_hub(hub_nc.jetstream(domain="hub"))
    cloud_loop = PausableLoop("cloud-replica")
    edge_nc = await nats.connect(hub.client_url)
    edge = SessionHost(
        edge_nc,
        Owner("edge", GW),
        loader("edge", Model(name="edge-model")),
        gw=GW,
        settings=SETTINGS_FAST,
        follow_after_handoff=True,
    )

    async def start_cloud() -> tuple[SessionHost, Model]:
        model = Model(name="cloud-model")
        nc = await nats.connect(hub.client_url)
        host = SessionHost(nc, Owner("cloud", "r1"), loader("cloud", model), settings=SETTINGS_FAST)
        return await host.__aenter__(), model

    async def stop_cloud(host: SessionHost) -> None:
        await host.aclose()
        await host.nc.close()

    try:
        await edge.__aenter__()
        cloud, model = await cloud_loop.call(start_cloud())
        try:
            yield Parties(edge, cloud, cloud_loop, model, hub_nc)
        finally:
            cloud_loop.thaw()
            await cloud_loop.call(stop_cloud(cloud))
    finally:
        await edge.aclose()
        await edge_nc.close()
        await cloud_loop.aclose()
        await hub_nc.close()


async def _owned_by(host: SessionHost, owner: str) -> None:
    async with timeout(WAIT_S):
        await host.board.wait(
            SESSION, lambda lease: lease is not None and lease.value.owner == owner
        )


def _command(epoch: int) -> Command:
    return Command(
        device="pump1", action="fan", deadline_ms=now_ms() + 60_000, session=SESSION, epoch=epoch
    )


async def _late_effects(zombie: SessionRunner, hub_js_: Any, epoch: int, tail: Any) -> list[str]:
    """What a woken owner tries at its old epoch; the refusal of each (runs on its loop)."""
    refusals = []
    try:
        await zombie.emit(ContentChunk, text="late")
        refusals.append("accepted: emit")
    except (LeaseLost, NotOwner) as exc:
        refusals.append(type(exc).__name__)
    # Its appender as its runner builds one (runner.py): fenced by its own lease clock.
    late = EventLog(hub_js_, SESSION, epoch=epoch, start=tail, still_owner=zombie.keeper.valid)
    async with late:
        seq = tail.seq + 1
        late.push(seq, encode(ContentChunk(session=SESSION, seq=seq, epoch=epoch, text="late")))
        try:
            await late.flush()
            refusals.append("accepted: log append")
        except LeaseLost as exc:
            refusals.append(type(exc).__name__)
    return refusals


async def _answer(events: AsyncIterator[AgentEventBase]) -> list[AgentEventBase]:
    async with timeout(WAIT_S):
        return [event async for event in events]


async def test_a_paused_owner_past_its_lease_never_acts_again_and_never_beside_another(
    parties: Parties, figures: Figures
) -> None:
    cycles = figures.scale(ci=10, full=200, name="handoffs")
    edge, cloud, cloud_loop = parties.edge, parties.cloud, parties.cloud_loop
    guard = ActuationGuard(GuardPolicy.build(ActuateConfig(), frozenset({"fan"})))
    loop = asyncio.get_running_loop()
    handoff_s: list[float] = []
    reclaim_s: list[float] = []
    stale_attempts = stale_accepted = 0
    await start_session(edge, SESSION)

    for cycle in range(cycles):
        # 1. edge -> cloud, timed
        started = loop.time()
        moved = await edge.handoff(SESSION, "cloud")
        assert moved.ok, moved.error
        handoff_s.append(loop.time() - started)
        await _owned_by(edge, CLOUD)
        assert guard.check(_command(moved.epoch), now_ms())  # the cloud acts at its epoch

        # 2. the cloud is mid-answer when its process freezes
        gate = asyncio.Event()
        await cloud_loop.call(_stall(parties.cloud_model, gate))
        answer = edge.ask(SESSION, f"question {cycle}")
        first = await _first(answer)
        assert first.epoch == moved.epoch
        await cloud_loop.call(parties.cloud_model.waiting.wait())
        zombie = await cloud_loop.call(_runner(cloud))
        # Where the log ended when it froze: the position its own appends would expect.
        its_tail = await log_tail(hub_js(edge.nc), SESSION)
        await cloud_loop.freeze()
        frozen_at = loop.time()

        # 3. the lease runs out; the edge takes it back and answers at a higher epoch
        await _owned_by(edge, EDGE)
        reclaim_s.append(loop.time() - frozen_at)
        rest = await _answer(answer)
        assert isinstance(rest[-1], AgentComplete) and rest[-1].epoch > moved.epoch
        new_epoch = rest[-1].epoch
        assert guard.check(_command(new_epoch), now_ms())

        # 4. the cloud wakes up mid-answer and tries to act at its old epoch
        cloud_loop.thaw()
        await cloud_loop.call(_release(gate))
        refusals = await cloud_loop.call(
            _late_effects(zombie, hub_js(cloud.nc), moved.epoch, its_tail)
        )
        try:
            guard.check(_command(moved.epoch), now_ms())
            refusals.append("accepted: actuation")
        except GuardRefused as exc:
            assert exc.reason == "stale_epoch"
            refusals.append(exc.reason)
        stale_attempts += len(refusals)
        stale_accepted += sum(r.startswith("accepted") for r in refusals)
        await cloud_loop.call(_gone(cloud))

    events = await read_log(hub_js(edge.nc), SESSION, after=0)
    backwards = sum(1 for a, b in itertools.pairwise(events) if b.epoch < a.epoch)
    late_texts = sum(1 for e in events if getattr(e, "text", "") == "late")
    figures.record(
        stale_attempts=stale_attempts,
        stale_accepted=stale_accepted + late_texts,
        two_owners_acting=backwards,
        log_events=len(events),
    )
    figures.samples("handoff_s", handoff_s)
    figures.samples("reclaim_after_pause_s", reclaim_s)
    assert stale_accepted == 0 and late_texts == 0
    assert backwards == 0, "the session log went back to an older epoch"


async def _first(events: AsyncIterator[AgentEventBase]) -> AgentEventBase:
    async with timeout(WAIT_S):
        return await events.__anext__()


async def _stall(model: Model, gate: asyncio.Event) -> None:
    """The model's next reply waits on `gate` (set on the model's own loop)."""
    model.gate = gate
    model.waiting.clear()


async def _runner(host: SessionHost) -> SessionRunner:
    return host.runners[SESSION]


async def _release(gate: asyncio.Event) -> None:
    gate.set()


async def _gone(host: SessionHost) -> None:
    """Until the woken cloud has stopped running the session it lost (its own state,
    only visible by looking)."""

    async def dropped() -> bool:
        return SESSION not in host.runners

    await poll_until(dropped, timeout_s=WAIT_S)
