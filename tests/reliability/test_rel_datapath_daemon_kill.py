"""Item 1: `kill -9` the edge daemon again and again under load — nothing acknowledged is
lost, nothing is applied twice at the cloud.

Sensors publish at QoS 1 to the leaf's MQTT listener the whole time; the leaf's UPLINK
stream stores what it acknowledges whether or not the daemon runs. `baton edge run` (a
real process) forwards to the hub and is SIGKILLed mid-stream, then started again, N
times. A cloud replica ingests FLEET all along. At the end: every acknowledged reading
is in FLEET exactly once, in per-device order; every twin in the hub KV counted each
reading once; the daemon's SQLite file passes `PRAGMA integrity_check`.

Figures: restart-to-forwarding (process spawn → first forwarded message at the hub),
kill-to-forwarding, spawn-to-ready.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from datapath_kit import (
    GW,
    EdgeProcess,
    FleetWatcher,
    HubView,
    LeafView,
    MqttLoad,
    cloud_replica,
    eventually,
    ingest_count,
    sqlite_integrity,
    sustained,
    verdict,
    write_edge_config,
)

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from shared.natsrun import LocalTopology

if TYPE_CHECKING:
    from conftest import Figures

DEVICES = ("k0", "k1", "k2", "k3")
RATE_PER_S = 200.0


async def test_daemon_kill9_under_load_loses_nothing_and_applies_nothing_twice(
    topology: LocalTopology, tmp_path: Path, figures: Figures
) -> None:
    kills = figures.scale(ci=3, full=20, name="kills")
    loop = asyncio.get_running_loop()
    config = write_edge_config(tmp_path / "edge.toml", topology.leaf.client_url)
    edge = EdgeProcess(config, tmp_path / "edge.log")
    restart_to_fwd: list[float] = []
    kill_to_fwd: list[float] = []
    to_ready: list[float] = []
    async with (
        HubView.open(topology.hub.client_url) as hub,
        LeafView.open(topology.leaf.client_url) as leaf,
        FleetWatcher.open(hub.nc) as watcher,
        cloud_replica(topology.hub.client_url, tmp_path) as cloud,
        MqttLoad(topology.leaf.mqtt_url or "", DEVICES, rate_per_s=RATE_PER_S) as load,
    ):
        try:
            await edge.start()
            await edge.wait_ready()
            async with sustained(load):
                for i in range(kills):
                    # Let it forward a varying stretch, so each kill lands mid-stream.
                    await watcher.wait_count(watcher.count + 50 + (37 * i) % 150)
                    killed_at = loop.time()
                    await edge.kill9()
                    # The sensors carry on; the leaf stores while no daemon runs.
                    await load.wait_acked(load.acked_total + 40)
                    spawned_at = loop.time()
                    await edge.start()
                    first = await watcher.first_after(spawned_at)
                    restart_to_fwd.append(first - spawned_at)
                    kill_to_fwd.append(first - killed_at)
                    await edge.wait_ready()
                    to_ready.append(loop.time() - spawned_at)
                await watcher.wait_count(watcher.count + 100)
            await load.settle()
            complete = await hub.wait_count(load.acked_total) and await leaf.wait_empty()
        finally:
            await edge.aclose()
        at_hub = await hub.per_device()
        result = verdict(load.acked, at_hub)
        # The cloud: each distinct reading counted once in its twin (the KV, the truth).
        distinct = {d: len(set(seqs)) for d, seqs in at_hub.items()}

        async def twins_caught_up() -> bool:
            for device, count in distinct.items():
                twin = await hub.twin(device)
                if twin is None or twin.readings < count:
                    return False
            return True

        await eventually(twins_caught_up, "the cloud ingested every reading")
        twin_counts = {d: (await hub.twin(d)).readings for d in distinct}  # type: ignore[union-attr]
        applied = ingest_count(cloud, "r", "applied")
        watcher_count = watcher.count

    integrity = sqlite_integrity(tmp_path / "edge-state" / "edge.db")
    applied_twice = sum(twin_counts[d] - distinct[d] for d in distinct)
    figures.record(
        rate_per_s=RATE_PER_S,
        sent=load.sent_total,
        **result.figures(),
        applied_twice=applied_twice,
        hub_dedupe_absorbed=watcher_count - result.at_hub,
        cloud_applied=int(applied),
        sqlite_integrity=integrity,
    )
    figures.samples("restart_to_forwarding_s", restart_to_fwd)
    figures.samples("kill_to_forwarding_s", kill_to_fwd)
    figures.samples("spawn_to_ready_s", to_ready)
    assert complete, f"not everything reached the hub: {result}"
    assert result.lost == 0, result.lost_examples
    assert result.duplicated == 0
    assert result.order_kept
    assert applied_twice == 0 and applied == sum(distinct.values())
    assert integrity == "ok"


async def test_readings_acknowledged_before_the_daemon_ever_started_reach_the_hub(
    topology: LocalTopology, tmp_path: Path, figures: Figures
) -> None:
    # The leaf creates UPLINK as it starts (shared/natsrun/prepare.py), so what it
    # acknowledges before any daemon has run is stored, and forwarded once one does.
    early = 20
    config = EdgeConfig(
        gateway=GW,
        nats_url=topology.leaf.client_url,
        state_dir=tmp_path / "edge",
        http={"enabled": False},
        uplink={"enabled": True, "hub_ack_timeout_s": 1.0, "retry_backoff_max_s": 0.3},
        downlink={"enabled": False},
    )
    async with (
        HubView.open(topology.hub.client_url) as hub,
        MqttLoad(topology.leaf.mqtt_url or "", DEVICES) as load,
    ):
        for _ in range(early):
            for device in DEVICES:
                load.publish_one(device)
        await load.settle()  # all PUBACKed by the leaf, no daemon ever ran
        async with EdgeDaemon(config), LeafView.open(topology.leaf.client_url) as leaf:
            for device in DEVICES:  # one more each, now that the daemon runs
                load.publish_one(device)
            await load.settle()
            # The forwarder keeps leaf order: once the last ones are at the hub and the
            # leaf is empty, everything the leaf had stored is at the hub.
            await eventually(
                lambda: hub.per_device_has_last(load.sent), "the last readings at the hub"
            )
            assert await leaf.wait_empty()
        result = verdict(load.acked, await hub.per_device())
    figures.record(**result.figures(), acknowledged_before_first_start=early * len(DEVICES))
    assert result.lost == 0, result.lost_examples
