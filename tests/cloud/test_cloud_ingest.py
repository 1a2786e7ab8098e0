"""Ingest against a real hub: exactly once by (gateway, device, seq), HLC order, bad input.

Every test waits on a *sentinel*: one more reading published after the messages under
test. With one ingest worker, FLEET is applied in stream order, so once the sentinel is
in the twin (and in the read model), everything before it has been handled.
"""

from __future__ import annotations

from cloudkit import (
    GW,
    WAIT_S,
    FleetPublisher,
    OrchestratorFactory,
    applied,
    encode_reading,
    metric,
)
from nats.js import JetStreamContext

from shared import codec, hlc
from shared.messages import GatewayEvent
from shared.natsrun.monitor import poll_until


async def test_duplicates_and_replays_after_the_window_change_nothing(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher
) -> None:
    orch = await orchestrator()
    for seq in range(20):
        await fleet.reading("d1", seq)
    await orch.wait_for(lambda: applied(orch, "d1", 20), WAIT_S)
    before = orch.readmodel.twin(GW, "d1")

    # Same ids: JetStream's own dedupe drops them. Fresh ids: what a gateway replaying
    # its backlog after the duplicate window looks like; the stream stores them again.
    for seq in (3, 4):
        await fleet.reading("d1", seq)
    for seq in reversed(range(20)):
        await fleet.reading("d1", seq, msg_id=f"{GW}/d1/r/{seq}/replayed")
    await fleet.reading("d1", 20)  # the sentinel
    await orch.wait_for(lambda: applied(orch, "d1", 21), WAIT_S)

    twin = orch.readmodel.twin(GW, "d1")
    assert twin is not None and before is not None
    assert (twin.readings, twin.seq_floor, twin.seq_ranges) == (21, 20, [])
    assert twin.last_seq == 20
    rollups = orch.readmodel.rollups("d1", 5, GW)
    assert sum(r["count"] for r in rollups) == 21
    assert metric(orch, "baton_cloud_ingest_messages_total", kind="r", outcome="duplicate") == 20
    assert metric(orch, "baton_cloud_ingest_messages_total", kind="r", outcome="applied") == 21


async def test_late_reading_is_ordered_by_hlc(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher
) -> None:
    orch = await orchestrator()
    early = fleet.clock.now()
    late_stamp = hlc.pack(hlc.unpack(early)[0] + 500, 0)
    await fleet.reading("d1", 2, stamp=late_stamp, value=2.0)
    await fleet.reading("d1", 1, stamp=early, value=1.0)  # arrives last, happened first
    await orch.wait_for(lambda: applied(orch, "d1", 2), WAIT_S)

    twin = orch.readmodel.twin(GW, "d1")
    assert twin is not None
    assert (twin.last_seq, twin.last_hlc, twin.last_metrics) == (2, late_stamp, {"t": 2.0})
    assert [r["seq"] for r in orch.readmodel.readings(GW, "d1")] == [2, 1]


async def test_bad_payloads_are_counted_terminated_and_never_stop_the_loop(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher, hub_js: JetStreamContext
) -> None:
    orch = await orchestrator()
    await fleet.publish("r", "d1", b"\xc1 not msgpack", 1)
    await fleet.publish("r", "d1", b'{"v": 1, "kind": "reading", "device": "d1"}', 2)
    await fleet.publish("r", "d1", b'{"v": 1, "kind": "reading", "device": "d1", "seq": 3, '
                        b'"ts_ms": 1, "metrics": {"t": NaN}}', 3)  # fmt: skip
    await fleet.publish("status", "d1", b"perhaps", 4)
    await fleet.publish("r", "d9", encode_reading("d1", 99), 5)
    await fleet.publish("r", "d1", encode_reading("d1", 99), 6, gw="gw2", msg_id="spoof")
    await fleet.reading("d1", 7)  # the sentinel
    await orch.wait_for(lambda: applied(orch, "d1", 1), WAIT_S)

    for reason in ("malformed", "invalid", "non_finite", "bad_status", "device_mismatch"):
        assert metric(orch, "baton_cloud_ingest_rejected_total", reason=reason) == 1, reason
    assert orch.readmodel.twin(GW, "d9") is None

    # Terminated, not left to redeliver: the consumer settles with nothing in flight.
    async def settled() -> bool:
        info = await hub_js.consumer_info("FLEET", orch.config.ingest.durable)
        assert info.num_redelivered == 0
        return info.num_ack_pending == 0 and info.num_pending == 0

    await poll_until(settled, timeout_s=WAIT_S)


async def test_gateway_events_reach_the_event_stream_and_are_not_rejected(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher, hub_js: JetStreamContext
) -> None:
    orch = await orchestrator()
    events = orch.bus.subscribe({"event"})
    # What an edge sends on its own subject `fleet.<gw>.ev.<gw>`: about the gateway as a
    # whole, or about one of its devices.
    stats = GatewayEvent(gw=GW, type="stats", data={"readings_ok": 5, "backlog": 0})
    quarantine = GatewayEvent(gw=GW, device="d1", type="quarantine", data={"reason": "malformed"})
    await fleet.publish("ev", GW, codec.encode(stats), "stats-1")
    await fleet.publish("ev", GW, codec.encode(quarantine), "quarantine-1")

    first, second = await events.next(WAIT_S), await events.next(WAIT_S)
    assert first is not None and second is not None
    assert [(e.data["gw"], e.data["message"]["type"]) for e in (first, second)] == [
        (GW, "stats"),
        (GW, "quarantine"),
    ]
    assert [e.data["message"]["device"] for e in (first, second)] == [None, "d1"]

    async def settled() -> bool:
        info = await hub_js.consumer_info("FLEET", orch.config.ingest.durable)
        return bool(info.num_ack_pending == 0 and info.num_pending == 0)

    await poll_until(settled, timeout_s=WAIT_S)
    assert metric(orch, "baton_cloud_ingest_messages_total", kind="ev", outcome="event") == 2
    assert metric(orch, "baton_cloud_ingest_rejected_total", reason="device_mismatch") == 0
