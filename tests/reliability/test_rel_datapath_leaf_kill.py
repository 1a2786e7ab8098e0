"""Item 2: `kill -9` the gateway's leaf nats-server under load — nothing acknowledged lost.

The leaf is the gateway's store: it PUBACKs the sensors' QoS 1 readings and keeps them
in its UPLINK stream until the hub has them. Here it is SIGKILLed N times while sensors
publish and the edge daemon (in-process) forwards; each time it is started again on the
same store, the sensors (paho) reconnect and re-send what was in flight, the daemon
reconnects, and the forwarder re-creates its consumer.

Run with `sync_interval: always` (production) and, as a control, with nats-server's
default (fsync every 2 minutes). A SIGKILL does not lose the page cache, so the control
shows no loss either: only a real power cut can tell the two apart (docs/reliability.md).
`test_rel_datapath_powercut.py` is the stand-in for one, where the machine allows it.

Figures: per kill, kill-to-acknowledging-again (the sensors' view) and whether the hub
got everything; acknowledged, lost, duplicated.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from datapath_kit import GW, HubView, LeafView, MqttLoad, sustained, verdict

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from shared.natsrun import LocalTopology

if TYPE_CHECKING:
    from conftest import Figures

DEVICES = ("p0", "p1", "p2", "p3")
RATE_PER_S = 200.0


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


@pytest.mark.parametrize("sync", ["always", "default"])
async def test_leaf_kill9_under_load_loses_nothing_acknowledged(
    tmp_path: Path, no_nats_left: None, figures: Figures, sync: Literal["always", "default"]
) -> None:
    kills = figures.scale(ci=2, full=10, name="kills")
    loop = asyncio.get_running_loop()
    back_after: list[float] = []
    topo = LocalTopology(GW, base_dir=tmp_path / "nats", sync_always=sync == "always")
    async with (
        topo,
        HubView.open(topo.hub.client_url) as hub,
        EdgeDaemon(edge_config(topo.leaf.client_url, tmp_path / "edge")) as daemon,
        MqttLoad(topo.leaf.mqtt_url or "", DEVICES, rate_per_s=RATE_PER_S) as load,
    ):
        async with sustained(load):
            await load.wait_acked(100)
            for i in range(kills):
                await load.wait_acked(load.acked_total + 100 + (37 * i) % 100)
                killed_at = loop.time()
                await topo.leaf.kill()
                await topo.leaf.start()
                await topo.wait_linked()
                # The sensors reconnect (paho, 1 s) and are acknowledged again.
                await load.wait_acked(load.acked_total + 20)
                back_after.append(loop.time() - killed_at)
            await load.wait_acked(load.acked_total + 100)
        await load.settle()
        async with LeafView.open(topo.leaf.client_url) as leaf:
            complete = await hub.wait_count(load.acked_total) and await leaf.wait_empty()
        result = verdict(load.acked, await hub.per_device())
        stats = daemon.stats().uplink

    figures.record(
        sync_interval=sync,
        rate_per_s=RATE_PER_S,
        sent=load.sent_total,
        **result.figures(),
        mqtt_reconnects=load.connects - 1,
        hub_duplicates_absorbed=stats.duplicates,
    )
    figures.samples("kill_to_acked_again_s", back_after)
    assert load.connects > kills, "the sensors never saw the leaf go"
    assert complete, f"not everything reached the hub: {result}"
    assert result.lost == 0, result.lost_examples
    assert result.duplicated == 0
