"""Sagas survive their replica: a closed or dead owner's saga is continued by another
replica from the record in the hub KV, with a higher fencing epoch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from cloud.errors import Conflict
from cloud.planner import PlannerConfig, PlannerService, PlanRecord
from cloud.planner.commands import Slot, parse_cmd_id
from cloud.planner.fakes import Answer, FakeEdge
from cloud.planner.kv import open_bucket
from cloud.planner.lease import Leases
from cloud.planner.store import PlanStore
from cloud.twins.view import MemoryFleetView
from shared.compat import timeout
from shared.messages import Command, Plan, PlanStep, TwinState
from shared.natsrun import NatsServer
from shared.streams import ensure_hub

WAIT_S = 15.0
T = TypeVar("T")
CFG = PlannerConfig(step_deadline_s=5.0, lease_s=1.0, schedule_s=3600, entry_points=False)


@pytest.fixture
async def hub_url(hub: NatsServer) -> AsyncIterator[str]:
    nc = await nats.connect(hub.client_url)
    await ensure_hub(nc.jetstream())
    await nc.close()
    yield hub.client_url


@pytest.fixture
async def conn(hub_url: str) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await nats.connect(hub_url)
    yield nc, nc.jetstream()
    await nc.close()


def pump_fleet() -> MemoryFleetView:
    return MemoryFleetView([TwinState(device="pump-1", gw="gw1")])


def ended(service: PlannerService) -> asyncio.Queue[PlanRecord]:
    queue: asyncio.Queue[PlanRecord] = asyncio.Queue()
    service.subscribe(lambda rec: queue.put_nowait(rec) if rec.ended else None)
    return queue


async def next_of(queue: asyncio.Queue[T]) -> T:
    async with timeout(WAIT_S):
        return await queue.get()


def first_step_silent(cmd: Command) -> Answer:
    """The edge takes step 0 but its ack is late (the test sends it); the rest are acked."""
    slot = parse_cmd_id(cmd.cmd_id)
    return "silent" if slot is not None and slot.index == 0 and not slot.undo else "ack"


async def test_a_closed_replica_hands_its_saga_to_another(
    conn: tuple[Client, JetStreamContext], hub_url: str
) -> None:
    _, js = conn
    nc_a, nc_b = await nats.connect(hub_url), await nats.connect(hub_url)
    a = PlannerService(nc_a, nc_a.jetstream(), CFG, pump_fleet(), "replica-a")
    try:
        async with FakeEdge(js, "gw1", first_step_silent) as edge:
            await a.start()
            async with PlannerService(nc_b, nc_b.jetstream(), CFG, pump_fleet(), "replica-b") as b:
                done = ended(b)
                plan = await a.request_plan("anomaly:gw1/pump-1", "wear")
                assert plan is not None
                step0 = await next_of(edge.commands)
                await a.aclose()  # mid-saga: step 0 sent, not yet acked
                await edge.ack(step0)
                rec = await next_of(done)
    finally:
        await a.aclose()
        await nc_a.close()
        await nc_b.close()
    assert rec.status == "succeeded" and rec.owner == "replica-b"
    claims = [e for e in rec.history if e.event == "claimed"]
    assert [c.replica for c in claims] == ["replica-a", "replica-b"]
    assert claims[1].epoch > claims[0].epoch
    # Step 0 was sent once (B's re-send was a duplicate the hub dropped), then step 1 by B.
    assert [c.cmd_id for c in edge.heard] == [f"{plan.plan_id}-0", f"{plan.plan_id}-1"]
    assert edge.heard[1].epoch == claims[1].epoch


async def test_a_dead_replica_saga_is_taken_over_when_its_lease_expires(
    conn: tuple[Client, JetStreamContext], hub_url: str
) -> None:
    _, js = conn
    nc_a, nc_b = await nats.connect(hub_url), await nats.connect(hub_url)
    a = PlannerService(nc_a, nc_a.jetstream(), CFG, pump_fleet(), "replica-a")
    try:
        async with FakeEdge(js, "gw1", first_step_silent) as edge:
            await a.start()
            async with PlannerService(nc_b, nc_b.jetstream(), CFG, pump_fleet(), "replica-b") as b:
                done = ended(b)
                plan = await a.request_plan("anomaly:gw1/pump-1", "wear")
                assert plan is not None
                step0 = await next_of(edge.commands)
                await nc_a.close()  # the replica loses the hub: no renewals, no writes
                await edge.ack(step0)
                rec = await next_of(done)
    finally:
        await a.aclose()
        await nc_b.close()
    assert rec.status == "succeeded" and rec.owner == "replica-b"
    assert b.stats()["sagas.adopted"] == 1


async def test_only_the_owner_can_write_a_plan_record(
    conn: tuple[Client, JetStreamContext],
) -> None:
    _, js = conn
    plans = await open_bucket(js, "plans")
    store = PlanStore(plans, await open_bucket(js, "planner"))
    step = PlanStep(index=0, gw="gw1", device="pump-1", action="set_load", deadline_ms=1000)
    rec = PlanRecord(plan=Plan(trigger="anomaly", steps=[step]), key="k", scope="s")
    rev = await store.create(rec)
    newer = await store.save(rec.with_step(0, "sent"), rev)
    with pytest.raises(Conflict):  # a zombie writing over the revision it last saw
        await store.save(rec.with_step(0, "failed"), rev)
    loaded = await store.load(rec.plan_id)
    assert loaded is not None and loaded[1] == newer and loaded[0].step(0).status == "sent"


async def test_a_held_lease_cannot_be_claimed_and_its_epoch_grows(
    conn: tuple[Client, JetStreamContext],
) -> None:
    _, js = conn
    bucket = await open_bucket(js, "plan_leases", ttl_s=1.0, markers=True)
    a = Leases(js, bucket, "plan_leases", "a")
    b = Leases(js, bucket, "plan_leases", "b")
    first = await a.claim("p1")
    assert first is not None
    assert await b.claim("p1") is None
    assert await a.renew("p1")
    await a.release("p1")
    second = await b.claim("p1")
    assert second is not None and second > first
    assert not await a.renew("p1")  # a no longer holds it


async def test_dedupe_locks_are_shared_and_cleared_when_stale(
    conn: tuple[Client, JetStreamContext],
) -> None:
    _, js = conn
    store = PlanStore(await open_bucket(js, "plans"), await open_bucket(js, "planner"))
    step = PlanStep(index=0, gw="gw1", device="pump-1", action="set_load", deadline_ms=1000)
    rec = PlanRecord(plan=Plan(trigger="anomaly", steps=[step]), key="k", scope="s")
    await store.create(rec)
    assert await store.lock("maintenance.gw1.pump-1", rec.plan_id)
    assert not await store.lock("maintenance.gw1.pump-1", "other")
    # The holder ended but its owner died before unlocking: the lock is stale.
    done = rec.with_plan(status="compensated")
    loaded = await store.load(rec.plan_id)
    assert loaded is not None
    await store.save(done, loaded[1])
    assert await store.lock("maintenance.gw1.pump-1", "other")


def test_cmd_ids_name_their_plan_and_step() -> None:
    slot = Slot("a" * 32, 3, undo=True)
    assert parse_cmd_id(slot.cmd_id) == slot
    assert parse_cmd_id(Slot("b" * 32, 0).cmd_id) == Slot("b" * 32, 0)
    for foreign in ("", "abc", "a" * 32, f"{'a' * 32}-x", f"{'a' * 32}-1-z", "g" * 32 + "-1"):
        assert parse_cmd_id(foreign) is None
