"""Item 3: the uplink partitioned from the hub under load — 0 lost, 0 doubled, order kept.

Sensors publish at QoS 1 to the leaf's MQTT listener at a steady rate the whole time; the
edge daemon (in-process) forwards to the hub. The leaf node link runs through a relay
that the test cuts, either by refusing connections (the hub unreachable) or by silently
dropping every byte (a blackhole: the link still looks up, only timeouts tell). After the
outage: every acknowledged reading is in the hub's FLEET, in per-device order, and a cloud
replica applied each one once.

Duplicates in FLEET: the forwarder re-sends what it had in flight when the link went
(it cannot know whether the hub stored it); the hub's Nats-Msg-Id dedupe absorbs that
within its 2-minute window (ADR-31). An outage longer than the window can leave those
few messages (at most the forwarder's three batches) twice in FLEET, by design, and the
cloud's idempotent ingest applies them once: the full form (3-minute outage) checks
exactly that, the bounded one (5 s) that there are none.

Figures: outage length, peak backlog (messages, bytes) on the leaf, how fast the
backlog drained after the link came back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from datapath_kit import (
    DEADLINE_S,
    GW,
    HubView,
    LeafView,
    MqttLoad,
    cloud_replica,
    eventually,
    linked_pair,
    sustained,
    verdict,
)

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.uplink import UplinkConfig
from shared import streams

if TYPE_CHECKING:
    from conftest import Figures

DEVICES = ("s0", "s1", "s2", "s3")
RATE_PER_S = 200.0
SAMPLE_EVERY_S = 0.25


def edge_config(leaf_url: str, state: Path) -> EdgeConfig:
    return EdgeConfig(
        gateway=GW,
        nats_url=leaf_url,
        state_dir=state,
        http={"enabled": False},
        uplink={"enabled": True, "hub_ack_timeout_s": 1.0, "retry_backoff_max_s": 0.3},
        downlink={"enabled": False},
        store={"flush_interval_ms": 50},
    )


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
async def test_partition_under_load_loses_doubles_and_reorders_nothing(
    tmp_path: Path, no_nats_left: None, figures: Figures, mode: Literal["refuse", "blackhole"]
) -> None:
    outage_s = figures.scale(ci=5, full=180, name="outage_s")
    loop = asyncio.get_running_loop()
    async with (
        linked_pair(tmp_path / "nats") as (topo, relay),
        HubView.open(topo.hub.client_url) as hub,
        LeafView.open(topo.leaf.client_url) as leaf,
        cloud_replica(topo.hub.client_url, tmp_path),
        EdgeDaemon(edge_config(topo.leaf.client_url, tmp_path / "edge")) as daemon,
        MqttLoad(topo.leaf.mqtt_url or "", DEVICES, rate_per_s=RATE_PER_S) as load,
    ):
        async with sustained(load):
            await load.wait_acked(200)
            assert await hub.wait_count(100), "forwarding never started"

            await relay.cut(mode)
            cut_at = loop.time()
            peak_msgs = peak_bytes = 0
            # The outage itself is a deliberate, timed stretch; the samples only measure it.
            while loop.time() - cut_at < outage_s:
                msgs, size = await leaf.backlog()
                peak_msgs, peak_bytes = max(peak_msgs, msgs), max(peak_bytes, size)
                await asyncio.sleep(SAMPLE_EVERY_S)
            acked_at_heal = load.acked_total
            at_hub_at_heal = await hub.count()
            msgs, size = await leaf.backlog()
            peak_msgs, peak_bytes = max(peak_msgs, msgs), max(peak_bytes, size)

            await relay.heal()
            healed_at = loop.time()
            drain_deadline = DEADLINE_S + 2 * outage_s
            assert await hub.wait_count(acked_at_heal, timeout_s=drain_deadline), "no drain"
            caught_up_at = loop.time()
            drained = await hub.count() - at_hub_at_heal
            # Keep the load on a little after the catch-up: new readings flow again.
            await load.wait_acked(load.acked_total + 100)

        await load.settle()
        complete = await hub.wait_count(load.acked_total, timeout_s=drain_deadline)
        complete = complete and await leaf.wait_empty()
        await eventually(lambda: daemon.stats().uplink.hub_connected, "uplink reconnected")
        stats = daemon.stats().uplink
        at_hub = await hub.per_device()
        result = verdict(load.acked, at_hub)
        distinct = {d: len(set(seqs)) for d, seqs in at_hub.items()}

        async def cloud_caught_up() -> bool:
            twins = [await hub.twin(d) for d in distinct]
            return all(t is not None and t.readings >= distinct[t.device] for t in twins)

        await eventually(cloud_caught_up, "the cloud ingested every reading", drain_deadline)
        applied_twice = 0
        for device, count in distinct.items():
            twin = await hub.twin(device)
            applied_twice += (twin.readings if twin else 0) - count

    figures.record(
        mode=mode,
        rate_per_s=RATE_PER_S,
        sent=load.sent_total,
        **result.figures(),
        peak_backlog_msgs=peak_msgs,
        peak_backlog_bytes=peak_bytes,
        catch_up_s=caught_up_at - healed_at,
        drain_rate_per_s=drained / max(caught_up_at - healed_at, 1e-6),
        hub_duplicates_absorbed=stats.duplicates,
        dropped_full=stats.dropped_full,
        cloud_applied_twice=applied_twice,
    )
    assert complete, f"not everything reached the hub: {result}"
    assert result.lost == 0, result.lost_examples
    if outage_s <= streams.DUPLICATE_WINDOW_S:
        assert result.duplicated == 0
    else:  # only what was in flight at the cut, past the hub's dedupe window
        assert result.duplicated <= 3 * UplinkConfig().batch
    assert applied_twice == 0
    assert result.order_kept
    assert stats.dropped_full == 0
    assert peak_msgs >= RATE_PER_S * outage_s * 0.5, "the outage built no backlog"
