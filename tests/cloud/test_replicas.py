"""Two replicas on one FLEET stream, one killed mid-load: nothing lost, nothing doubled.

Replica B is made to die at the worst moment: right after a twin write is stored and
before its messages are acked. Those messages are redelivered to A after `ack_wait`
and must be recognised as already applied; the rest of B's batch must be applied by A.
The twins in the hub KV (the source of truth) and A's read model must then hold every
reading exactly once.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pytest
from cloudkit import GW, WAIT_S, FleetPublisher, OrchestratorFactory, applied, metric
from nats.js import JetStreamContext

from cloud.twins.record import TwinRecord
from cloud.twins.store import Change
from shared import subjects
from shared.compat import TaskGroup, timeout

T = TypeVar("T")
DEVICES = [f"d{i}" for i in range(8)]
PER_DEVICE = 150
# Short ack_wait: B's unacked messages come back to A within a second.
INGEST = {"workers": 2, "batch": 16, "ack_wait_s": 1.0}


async def publish_load(fleet: FleetPublisher) -> None:
    for seq in range(PER_DEVICE):
        for device in DEVICES:
            await fleet.reading(device, seq)


async def test_two_replicas_one_killed_mid_load_lose_and_double_nothing(
    orchestrator: OrchestratorFactory,
    fleet: FleetPublisher,
    hub_js: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = await orchestrator("a", ingest=INGEST)
    b = await orchestrator("b", ingest=INGEST)
    stored_not_acked = asyncio.Event()
    real_update = b.store.update
    writes = 0

    async def update_then_hang(key: str, change: Change[T]) -> T:
        nonlocal writes
        result = await real_update(key, change)
        writes += 1
        if writes == 10:
            stored_not_acked.set()
            await asyncio.Event().wait()  # frozen: this batch is never acked
        return result

    monkeypatch.setattr(b.store, "update", update_then_hang)

    async with TaskGroup() as group:
        load = group.create_task(publish_load(fleet))
        async with timeout(WAIT_S):
            await stored_not_acked.wait()
        assert not load.done(), "B must die mid-load"
        await b.abort()

    total = len(DEVICES) * PER_DEVICE
    await a.wait_for(lambda: all(applied(a, d, PER_DEVICE) for d in DEVICES), WAIT_S)

    kv = await hub_js.key_value(subjects.TWINS_BUCKET)
    for device in DEVICES:
        entry = await kv.get(f"{GW}.{device}")
        assert entry.value is not None
        twin = TwinRecord.decode(entry.value)
        assert (twin.readings, twin.seq_floor, twin.seq_ranges) == (
            PER_DEVICE,
            PER_DEVICE - 1,
            [],
        ), device
    assert a.readmodel.reading_count() == total
    rollups: list[Any] = [r for d in DEVICES for r in a.readmodel.rollups(d, 5, GW)]
    assert sum(r["count"] for r in rollups) == total
    # B's stored-but-unacked group came back to A, which recognised it.
    assert metric(a, "baton_cloud_ingest_messages_total", kind="r", outcome="duplicate") >= 1
    assert metric(b, "baton_cloud_ingest_messages_total", kind="r", outcome="applied") > 0
