"""Two replicas on one FLEET stream, one killed mid-load or failing its twin writes:
nothing lost, nothing doubled.

Replica B is made to die at the worst moment: right after a twin write is stored and
before its messages are acked. Those messages are redelivered to A after `ack_wait`
and must be recognised as already applied; the rest of B's batch must be applied by A.
The twins in the hub KV (the source of truth) and A's read model must then hold every
reading exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from cloudkit import GW, WAIT_S, FleetPublisher, OrchestratorFactory, applied, metric
from nats.js import JetStreamContext

from cloud.orchestrator import Orchestrator
from cloud.twins.record import TwinRecord
from cloud.twins.seqwindow import MAX_RANGES
from cloud.twins.store import Change
from shared import subjects
from shared.compat import TaskGroup, timeout
from shared.errors import TransportError

T = TypeVar("T")
DEVICES = [f"d{i}" for i in range(8)]
PER_DEVICE = 150
# Short ack_wait: B's unacked messages come back to A within a second.
INGEST = {"workers": 2, "batch": 16, "ack_wait_s": 1.0}


async def publish_load(fleet: FleetPublisher) -> None:
    for seq in range(PER_DEVICE):
        for device in DEVICES:
            await fleet.reading(device, seq)


def freeze_after_writes(
    monkeypatch: pytest.MonkeyPatch, replica: Orchestrator, writes: int
) -> asyncio.Event:
    """Make `replica` hang right after its `writes`-th twin write, before any ack."""
    frozen = asyncio.Event()
    real_update = replica.store.update
    done = 0

    async def update_then_hang(key: str, change: Change[T]) -> T:
        nonlocal done
        result = await real_update(key, change)
        done += 1
        if done == writes:
            frozen.set()
            await asyncio.Event().wait()  # this batch is never acked
        return result

    monkeypatch.setattr(replica.store, "update", update_then_hang)
    return frozen


async def assert_each_reading_once_in_the_hub(js: JetStreamContext) -> None:
    kv = await js.key_value(subjects.TWINS_BUCKET)
    for device in DEVICES:
        entry = await kv.get(f"{GW}.{device}")
        assert entry.value is not None
        twin = TwinRecord.decode(entry.value)
        applied_once = (twin.readings, twin.seq_floor, twin.seq_ranges)
        assert applied_once == (PER_DEVICE, PER_DEVICE - 1, []), device


async def test_two_replicas_one_killed_mid_load_lose_and_double_nothing(
    orchestrator: OrchestratorFactory,
    fleet: FleetPublisher,
    hub_js: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = await orchestrator("a", ingest=INGEST)
    b = await orchestrator("b", ingest=INGEST)
    frozen = freeze_after_writes(monkeypatch, b, writes=10)

    async with TaskGroup() as group:
        load = group.create_task(publish_load(fleet))
        async with timeout(WAIT_S):
            await frozen.wait()
        assert not load.done(), "B must die mid-load"
        await b.abort()

    total = len(DEVICES) * PER_DEVICE
    await a.wait_for(lambda: all(applied(a, d, PER_DEVICE) for d in DEVICES), WAIT_S)
    await assert_each_reading_once_in_the_hub(hub_js)
    assert a.readmodel.reading_count() == total
    rollups: list[Any] = [r for d in DEVICES for r in a.readmodel.rollups(d, 5, GW)]
    assert sum(r["count"] for r in rollups) == total
    # B's stored-but-unacked group came back to A, which recognised it.
    assert metric(a, "baton_cloud_ingest_messages_total", kind="r", outcome="duplicate") >= 1
    assert metric(b, "baton_cloud_ingest_messages_total", kind="r", outcome="applied") > 0


async def test_readings_whose_twin_write_failed_count_once_when_redelivered(
    orchestrator: OrchestratorFactory,
    fleet: FleetPublisher,
    hub_js: JetStreamContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # B's twin writes time out (as when the hub restarts under it) while A's succeed.
    # JetStream deals the shared consumer's messages out to the waiting fetches in turn,
    # so A's writes leave a gap in the twin at each of B's readings, many more than the
    # twin keeps by count alone. B's readings are nak'd, come back, and must count once.
    ingest = {"workers": 1, "batch": 8, "ack_wait_s": 5.0}
    a = await orchestrator("a", ingest=ingest)
    b = await orchestrator("b", ingest=ingest)
    heal = fail_twin_writes(monkeypatch, b)
    peak = widest_window(monkeypatch, a)
    for seq in range(PER_DEVICE):
        await fleet.reading("d0", seq)
    heal.set()

    await a.wait_for(lambda: applied(a, "d0", PER_DEVICE), WAIT_S)
    kv = await hub_js.key_value(subjects.TWINS_BUCKET)
    entry = await kv.get(f"{GW}.d0")
    assert entry.value is not None
    twin = TwinRecord.decode(entry.value)
    assert (twin.readings, twin.seq_floor, twin.seq_ranges) == (PER_DEVICE, PER_DEVICE - 1, [])
    assert peak() > MAX_RANGES, "the failed writes must have left more gaps than the bound"
    assert metric(a, "baton_cloud_ingest_messages_total", kind="r", outcome="duplicate") == 0
    assert metric(b, "baton_cloud_ingest_messages_total", kind="r", outcome="duplicate") == 0


def fail_twin_writes(monkeypatch: pytest.MonkeyPatch, replica: Orchestrator) -> asyncio.Event:
    """Make every twin write of `replica` fail as a hub timeout does, until the event is set."""
    healed = asyncio.Event()
    real_update = replica.store.update

    async def update_or_time_out(key: str, change: Change[T]) -> T:
        if not healed.is_set():
            raise TransportError(f"twins KV get {key}: TimeoutError() (injected)")
        return await real_update(key, change)

    monkeypatch.setattr(replica.store, "update", update_or_time_out)
    return healed


def widest_window(monkeypatch: pytest.MonkeyPatch, replica: Orchestrator) -> Callable[[], int]:
    """The most reading ranges a twin held after one of `replica`'s writes."""
    widest = 0
    real_update = replica.store.update

    async def update_and_measure(key: str, change: Change[T]) -> T:
        nonlocal widest

        def measured(record: TwinRecord | None) -> tuple[TwinRecord | None, T]:
            nonlocal widest
            new, result = change(record)
            if new is not None:
                widest = max(widest, len(new.seq_ranges))
            return new, result

        return await real_update(key, measured)

    monkeypatch.setattr(replica.store, "update", update_and_measure)
    return lambda: widest
