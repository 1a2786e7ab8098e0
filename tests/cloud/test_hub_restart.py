"""A hub restart under a running replica: every feed comes back, nothing is lost or doubled.

The hub is stopped and started again on the same store while the replica runs, as the
demo's flaky uplink does. Afterwards the twins (KV, the source of truth) and the read
model (fed by the KV watch and by an ordered consumer over FLEET) must both hold every
reading once. Before, the FLEET feed's re-creation was refused for ever (nats-py kept
the first request's start time next to the sequence to resume from).
"""

from __future__ import annotations

from cloudkit import GW, WAIT_S, FleetPublisher, OrchestratorFactory, applied
from nats.js import JetStreamContext

from cloud.twins.record import TwinRecord
from shared import subjects
from shared.natsrun import NatsServer

DEVICES = ("d1", "d2", "d3")
# Feeds notice a restart by missed heartbeats: ~4 s for the FLEET consumer (`ordered`),
# ~20 s for nats-py's KV watch, whose heartbeat is fixed at 5 s. This bounds a broken test.
RECOVERY_S = 45.0


async def publish(fleet: FleetPublisher, seqs: range) -> None:
    for seq in seqs:
        for device in DEVICES:
            await fleet.reading(device, seq)


async def test_every_feed_comes_back_after_a_hub_restart(
    orchestrator: OrchestratorFactory,
    fleet: FleetPublisher,
    hub: NatsServer,
    hub_js: JetStreamContext,
) -> None:
    orch = await orchestrator(ingest={"workers": 2, "batch": 16})
    await publish(fleet, range(50))
    await orch.wait_for(lambda: all(applied(orch, d, 50) for d in DEVICES), WAIT_S)

    await hub.restart()
    await publish(fleet, range(50, 100))
    # `applied`: in the twin (KV watch) and as rows in the read model (FLEET feed).
    await orch.wait_for(lambda: all(applied(orch, d, 100) for d in DEVICES), RECOVERY_S)

    kv = await hub_js.key_value(subjects.TWINS_BUCKET)
    for device in DEVICES:
        entry = await kv.get(f"{GW}.{device}")
        assert entry.value is not None
        twin = TwinRecord.decode(entry.value)
        assert (twin.readings, twin.seq_floor, twin.seq_ranges) == (100, 99, []), device
