"""Item 5: a replay from the gateway after the hub's duplicate window — no effect twice.

The replay is the real one: a forwarder killed after the hub's PubAck and before its
local ack leaves messages that are already at the hub in the leaf store; when it comes
back later than the FLEET duplicate window (2 min; shrunk to 1 s here), it sends them
again, JetStream's Nats-Msg-Id dedupe no longer knows them, and FLEET stores them a
second time. Only the cloud's idempotent ingest (keyed by gateway, device, sequence)
stands between the replay and a second effect.

The test sets that state up exactly: the messages are in the leaf's UPLINK stream and
were published to FLEET under the forwarder's own ids (the cloud applied them); the
window passes; a forwarder starts and re-sends everything.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from datapath_kit import (
    GW,
    HubView,
    LeafView,
    cloud_replica,
    eventually,
    ingest_count,
    reading,
)

from edge.uplink import Uplink, UplinkConfig
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
    hub: HubView | None, leaf: LeafView, items: list[tuple[str, str, str | int, bytes]]
) -> None:
    """Store `items` (leaf subject, fleet subject, id key, payload) in the leaf's UPLINK
    *and* at the hub under the forwarder's ids: what a forwarder killed between the
    hub's PubAck and its local ack leaves behind. Without `hub`: only the leaf part (a
    second such kill, after the hub already stored them)."""
    clock = hlc.HybridLogicalClock()
    for leaf_subject, fleet_subject, key, payload in items:
        device, kind = fleet_subject.split(".")[3], fleet_subject.split(".")[2]
        msg_id = subjects.msg_id(GW, device, kind, key)
        leaf_headers = {subjects.HDR_MSG_ID: msg_id} if leaf_subject.startswith("uplink.") else None
        await leaf.js.publish(leaf_subject, payload, headers=leaf_headers)
        if hub is None:
            continue
        hub_headers = {
            subjects.HDR_MSG_ID: msg_id,
            subjects.HDR_GATEWAY: GW,
            subjects.HDR_HLC: str(clock.now()),
        }
        await hub.js.publish(fleet_subject, payload, headers=hub_headers)


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
        items = [
            (f"baton.d.{d}.r", subjects.fleet(GW, "r", d), s, reading(d, s))
            for s in range(per_device)
            for d in DEVICES
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


@pytest.mark.xfail(
    strict=True,
    reason=(
        "product bug: the forwarder stamps Baton-Hlc at forwarding time "
        "(edge/uplink/routing.py route(hlc=clock.now())) and cloud ingest orders twin "
        "reports and status by that header before the payload's own hlc "
        "(cloud/ingest/facts.py _stamp); a ReportedState re-sent after the FLEET duplicate "
        "window thus carries a newer HLC than the reports applied since, and the fold "
        "(cloud/twins/fold.py _apply: fact.hlc <= reported_hlc) applies it a second time"
    ),
)
async def test_twin_reports_replayed_after_the_duplicate_window_apply_once(
    topology: LocalTopology, tmp_path: Path, figures: Figures
) -> None:
    device = "r0"
    reports = [
        ReportedState(device=device, gw=GW, applied_version=v, state={"v": v}, hlc=None)
        for v in (1, 2, 3)
    ]
    async with (
        HubView.open(topology.hub.client_url) as hub,
        LeafView.open(topology.leaf.client_url) as leaf,
        cloud_replica(topology.hub.client_url, tmp_path) as cloud,
    ):
        await streams.ensure_stream(leaf.js, streams.uplink_stream(GW))
        await shrink_duplicate_window(hub)
        # The cloud needs the device (a reading), then gets reports v1..v3.
        await already_forwarded(
            hub,
            leaf,
            [(f"baton.d.{device}.r", subjects.fleet(GW, "r", device), 0, reading(device, 0))],
        )
        await already_forwarded(
            hub,
            leaf,
            [
                (
                    subjects.uplink(GW, "twin", device),
                    subjects.fleet(GW, "twin", device),
                    f"v{r.applied_version}",
                    codec.encode(r),
                )
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
    assert applied == 3, "a replayed report was applied again"
