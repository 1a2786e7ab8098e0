"""Item 7: a cloud ingest consumer crashed between its effect and its ack, N times — no
effect applied twice.

Readings flow into the hub's FLEET stream the whole time. A steady replica ingests; next
to it, replica after replica joins the shared durable consumer, stores one twin write
(a real effect: readings applied to a twin in the hub KV) and dies right there, before
its acks go out (`Orchestrator.abort()`: tasks cancelled, connection dropped). JetStream
redelivers its unacked messages after `ack_wait` to whoever fetches next, which must
recognise the applied ones (the twin's `SeqWindow`) and apply the rest.

Checked in the hub KV, the source of truth: each twin counted every distinct reading
exactly once, and its window is one solid range.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from datapath_kit import (
    DEADLINE_S,
    GW,
    HubView,
    cloud_config,
    cloud_replica,
    eventually,
    ingest_count,
    reading,
)

from cloud.orchestrator import Orchestrator
from cloud.twins.store import Change
from shared import hlc, subjects
from shared.compat import timeout
from shared.natsrun import NatsServer

if TYPE_CHECKING:
    from conftest import Figures

T = TypeVar("T")
DEVICES = [f"c{i}" for i in range(6)]
# Short ack_wait: a dead replica's messages come back within a second.
INGEST = {"workers": 1, "batch": 16, "ack_wait_s": 1.0}


def die_after_an_effect(replica: Orchestrator) -> asyncio.Event:
    """Make `replica` hang right after its next twin write that applied something, before
    any of that batch is acked; the event says it is there."""
    frozen = asyncio.Event()
    real_update = replica.store.update

    async def update_then_hang(key: str, change: Change[T]) -> T:
        result = await real_update(key, change)
        if getattr(result, "applied", ()):
            frozen.set()
            await asyncio.Event().wait()  # the acks never go out
        return result

    replica.store.update = update_then_hang  # type: ignore[method-assign]
    return frozen


class Readings:
    """Publishes readings to FLEET as the edge forwarder does, round-robin over DEVICES."""

    def __init__(self, hub: HubView) -> None:
        self._js = hub.js
        self._clock = hlc.HybridLogicalClock()
        self.sent: dict[str, int] = {d: 0 for d in DEVICES}

    async def publish(self, device: str) -> None:
        seq = self.sent[device]
        headers = {
            subjects.HDR_MSG_ID: subjects.msg_id(GW, device, "r", seq),
            subjects.HDR_GATEWAY: GW,
            subjects.HDR_HLC: str(self._clock.now()),
        }
        await self._js.publish(
            subjects.fleet(GW, "r", device), reading(device, seq), headers=headers
        )
        self.sent[device] = seq + 1

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for device in DEVICES:
                await self.publish(device)
            # Pacing only: a steady trickle for the crashing replicas to take from.
            await asyncio.sleep(0.005)


async def test_consumer_crashed_between_effect_and_ack_applies_nothing_twice(
    hub: NatsServer, tmp_path: Path, figures: Figures
) -> None:
    crashes = figures.scale(ci=10, full=100, name="crashes")
    victims: list[Orchestrator] = []
    crash_to_redelivered: list[float] = []
    loop = asyncio.get_running_loop()
    async with (
        HubView.open(hub.client_url) as view,
        cloud_replica(hub.client_url, tmp_path, "steady", ingest=INGEST) as steady,
    ):
        readings = Readings(view)
        stop = asyncio.Event()
        load = asyncio.create_task(readings.run(stop), name="fleet-readings")
        try:
            for i in range(crashes):
                victim = Orchestrator(
                    cloud_config(hub.client_url, tmp_path, f"v{i}", ingest=INGEST)
                )
                victims.append(victim)
                await victim.start()
                frozen = die_after_an_effect(victim)
                async with timeout(DEADLINE_S):
                    await frozen.wait()
                duplicates_before = ingest_count(steady, "r", "duplicate")
                await victim.abort()
                crashed_at = loop.time()
                if i < 3:  # the first few: time until a survivor recognised the redelivery
                    await eventually(
                        lambda b=duplicates_before: ingest_count(steady, "r", "duplicate") > b,
                        "the dead replica's applied messages redelivered and recognised",
                    )
                    crash_to_redelivered.append(loop.time() - crashed_at)
        finally:
            stop.set()
            await load
        sent = dict(readings.sent)

        async def all_applied() -> bool:
            for device, count in sent.items():
                twin = await view.twin(device)
                if twin is None or twin.readings < count:
                    return False
            return True

        def recognised_now() -> float:
            return ingest_count(steady, "r", "duplicate") + sum(
                ingest_count(v, "r", "duplicate") for v in victims
            )

        await eventually(all_applied, "every reading applied")
        # A dead replica's effect is in the twin before its message comes back (ack_wait
        # later), so the last crashes' redeliveries may still be on their way.
        await eventually(
            lambda: recognised_now() >= crashes,
            "the crashes never left an applied-but-unacked message",
        )
        twins: dict[str, Any] = {d: await view.twin(d) for d in DEVICES}
        recognised = recognised_now()

    total = sum(sent.values())
    counted = sum(t.readings for t in twins.values())
    figures.record(
        readings=total,
        effects_applied=counted,
        applied_twice=counted - total,
        redelivered_and_recognised=int(recognised),
    )
    figures.samples("crash_to_redelivery_recognised_s", crash_to_redelivered)
    assert counted == total, "an effect was applied twice (or lost)"
    for device, twin in twins.items():
        assert (twin.readings, twin.seq_floor, twin.seq_ranges) == (
            sent[device],
            sent[device] - 1,
            [],
        ), device
    assert recognised >= crashes, "the crashes never left an applied-but-unacked message"
