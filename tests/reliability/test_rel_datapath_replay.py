"""Item 5: a replay from the gateway after the hub's duplicate window — no effect twice.

The replay is the real one: a forwarder killed after the hub's PubAck and before its
local ack leaves messages that are already at the hub in the leaf store; when it comes
back later than the FLEET duplicate window (2 min; shrunk to 1 s here), it sends them
again, JetStream's Nats-Msg-Id dedupe no longer knows them, and FLEET stores them a
second time. Only the cloud's idempotent ingest (keyed by gateway, device, sequence)
stands between the replay and a second effect.

The test sets that state up exactly: the messages are in the leaf's UPLINK stream and
were published to FLEET as the forwarder publishes them (`edge.uplink.routing.route`:
its ids, its headers; the cloud applied them); the window passes; a forwarder starts
and re-sends everything. Readings are recognised by their sequence; twin reports and
device status by their HLC, which must be the same on the re-sent copy (the daemon's
stamp in a report, the leaf's store time in `Baton-Hlc`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from datapath_kit import (
    GW,
    HubView,
    LeafView,
    cloud_replica,
    eventually,
    ingest_count,
    reading,
)
from nats.js.api import AckPolicy, ConsumerConfig

from edge.uplink import Uplink, UplinkConfig, routing
from edge.uplink.forwarder import stored_ns, stream_seq
from shared import codec, hlc, streams, subjects
from shared.messages import ReportedState
from shared.natsrun import LocalTopology

if TYPE_CHECKING:
    from conftest import Figures

DEVICES = ("r0", "r1", "r2", "r3")
SHORT_WINDOW_S = 1.0
FAST = UplinkConfig(hub_ack_timeout_s=1.0, retry_backoff_max_s=0.3)


async def shrink_duplicate_window(hub: HubView) -> None:
    config = dataclasses.replace(streams.fleet_stream(), duplicate_window=SHORT_WINDOW_S)
    await hub.js.update_stream(config=config)


async def outlive_the_window() -> None:
    # The one deliberate timed wait: the hub must forget the ids it stored (ADR-31).
    await asyncio.sleep(SHORT_WINDOW_S * 1.5)


async def already_forwarded(
    hub: HubView | None, leaf: LeafView, items: list[tuple[str, str | int, bytes]]
) -> None:
    """Store `items` (leaf subject, id key, payload) in the leaf's UPLINK *and* at the hub
    as the forwarder sends them: what a forwarder killed between the hub's PubAck and its
    local ack leaves behind. Without `hub`: only the leaf part (a second such kill, after
    the hub already stored them). Call it while no forwarder runs."""
    first = 0
    for leaf_subject, key, payload in items:
        headers = None
        if leaf_subject.startswith("uplink."):  # the daemon's own items, as `submit` sends them
            kind, device = leaf_subject.split(".")[2:]
            headers = {subjects.HDR_MSG_ID: subjects.msg_id(GW, device, kind, key)}
        ack = await leaf.js.publish(leaf_subject, payload, headers=headers)
        first = first or ack.seq
    if hub is not None:
        await _forward_once(hub, leaf, first, len(items))


async def _forward_once(hub: HubView, leaf: LeafView, first: int, count: int) -> None:
    """Publish leaf messages `first`.. at the hub exactly as the forwarder routes them,
    leaving them in the leaf (never acked there)."""
    durable = "replay-setup"
    # A work-queue stream's consumers deliver all: skip what came before `first`.
    config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT)
    await leaf.js.add_consumer(subjects.UPLINK_STREAM, config)
    sub = await leaf.js.pull_subscribe_bind(durable, subjects.UPLINK_STREAM)
    try:
        sent = 0
        while sent < count:
            for msg in await sub.fetch(500, timeout=10):
                seq, stored = stream_seq(msg), stored_ns(msg)
                if seq < first:
                    continue
                assert stored is not None
                out = routing.route(
                    msg.subject, msg.data, msg.headers, stream_seq=seq,
                    gateway=GW, hlc=routing.stored_hlc(stored),
                )  # fmt: skip
                await hub.js.publish(out.subject, out.payload, headers=out.headers)
                sent += 1
    finally:
        await sub.unsubscribe()
        await leaf.js.delete_consumer(subjects.UPLINK_STREAM, durable)


async def test_readings_replayed_after_the_duplicate_window_apply_once(
    topology: LocalTopology, tmp_path: Path, figures: Figures
) -> None:
    per_device = figures.scale(ci=50, full=1000, name="readings_per_device")
    replays = figures.scale(ci=2, full=5, name="replays")
    total = per_device * len(DEVICES)
    async with (
        HubView.open(topology.hub.client_url) as hub,
        LeafView.open(topology.leaf.client_url) as leaf,
        cloud_replica(topology.hub.client_url, tmp_path) as cloud,
    ):
        await streams.ensure_stream(leaf.js, streams.uplink_stream(GW))
        await shrink_duplicate_window(hub)
        items: list[tuple[str, str | int, bytes]] = [
            (f"baton.d.{d}.r", s, reading(d, s)) for s in range(per_device) for d in DEVICES
        ]
        for replay in range(replays):
            await already_forwarded(hub if replay == 0 else None, leaf, items)
            await eventually(
                lambda: ingest_count(cloud, "r", "applied") >= total, "first copies applied"
            )
            await outlive_the_window()
            async with Uplink(leaf.nc, GW, FAST) as uplink:
                assert await hub.wait_count(total * (replay + 2)), "the replay never arrived"
                assert await leaf.wait_empty()
                absorbed = uplink.stats().duplicates
            replayed = total * (replay + 1)
            await eventually(
                lambda: ingest_count(cloud, "r", "duplicate") >= replayed,  # noqa: B023
                "the replayed copies ingested",
            )
        stored = await hub.count()
        twins = {d: await hub.twin(d) for d in DEVICES}
        applied = ingest_count(cloud, "r", "applied")
        duplicates = ingest_count(cloud, "r", "duplicate")

    counted = {d: t.readings if t else 0 for d, t in twins.items()}
    figures.record(
        distinct_readings=total,
        fleet_stored=stored,
        replayed_into_fleet=stored - total,
        hub_dedupe_absorbed=absorbed,
        cloud_applied=int(applied),
        cloud_recognised_duplicates=int(duplicates),
        applied_twice=sum(counted.values()) - total,
    )
    # The replays really reached the cloud: FLEET stored every copy again.
    assert stored == total * (replays + 1) and absorbed == 0
    assert applied == total and duplicates == total * replays
    assert counted == {d: per_device for d in DEVICES}


async def test_twin_reports_replayed_after_the_duplicate_window_apply_once(
    topology: LocalTopology, tmp_path: Path, figures: Figures
) -> None:
    device = "r0"
    clock = hlc.HybridLogicalClock()  # the twin keeper's: each report stamped as it is made
    reports = [
        ReportedState(device=device, gw=GW, applied_version=v, state={"v": v}, hlc=clock.now())
        for v in (1, 2, 3)
    ]
    async with (
        HubView.open(topology.hub.client_url) as hub,
        LeafView.open(topology.leaf.client_url) as leaf,
        cloud_replica(topology.hub.client_url, tmp_path) as cloud,
    ):
        await shrink_duplicate_window(hub)
        # The cloud needs the device (a reading), then gets reports v1..v3.
        await already_forwarded(hub, leaf, [(f"baton.d.{device}.r", 0, reading(device, 0))])
        await already_forwarded(
            hub,
            leaf,
            [
                (subjects.uplink(GW, "twin", device), r.applied_version, codec.encode(r))
                for r in reports
            ],
        )
        await eventually(
            lambda: ingest_count(cloud, "twin", "applied") >= 3, "the three reports applied"
        )
        await outlive_the_window()
        async with Uplink(leaf.nc, GW, FAST):
            assert await hub.wait_count(6, kind="twin")
            assert await leaf.wait_empty()
        await eventually(
            lambda: (
                ingest_count(cloud, "twin", "applied") + ingest_count(cloud, "twin", "duplicate")
                >= 6
            ),
            "the replayed reports ingested",
        )
        applied = ingest_count(cloud, "twin", "applied")
        twin = await hub.twin(device)
    figures.record(reports=3, replayed=3, reports_applied=int(applied))
    assert twin is not None and twin.reported_version == 3
    assert twin.reported_hlc == reports[-1].hlc
    assert applied == 3, "a replayed report was applied again"


async def test_device_status_replayed_after_the_duplicate_window_applies_once(
    topology: LocalTopology, tmp_path: Path, figures: Figures
) -> None:
    # A status message (`offline` as a last will, `online` when back) has no stamp of
    # its own: the leaf's store time in Baton-Hlc is what the re-sent copy must repeat.
    device = "r1"
    changes = [b"offline", b"online", b"offline", b"online"]
    async with (
        HubView.open(topology.hub.client_url) as hub,
        LeafView.open(topology.leaf.client_url) as leaf,
        cloud_replica(topology.hub.client_url, tmp_path) as cloud,
    ):
        await shrink_duplicate_window(hub)
        await already_forwarded(hub, leaf, [(f"baton.d.{device}.r", 0, reading(device, 0))])
        status = f"baton.d.{device}.status"
        await already_forwarded(hub, leaf, [(status, n, body) for n, body in enumerate(changes)])
        await eventually(
            lambda: ingest_count(cloud, "status", "applied") >= len(changes),
            "the status changes applied",
        )
        await outlive_the_window()
        async with Uplink(leaf.nc, GW, FAST):
            assert await hub.wait_count(2 * len(changes), kind="status")
            assert await leaf.wait_empty()
        await eventually(
            lambda: (
                ingest_count(cloud, "status", "applied")
                + ingest_count(cloud, "status", "duplicate")
                >= 2 * len(changes)
            ),
            "the replayed status ingested",
        )
        applied = ingest_count(cloud, "status", "applied")
        twin = await hub.twin(device)
    figures.record(status_changes=len(changes), replayed=len(changes), applied=int(applied))
    assert twin is not None and twin.online
    assert applied == len(changes), "a replayed status was applied again"
