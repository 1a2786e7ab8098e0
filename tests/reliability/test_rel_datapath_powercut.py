"""Item 2, the real question: a power cut of the gateway, with and without
`sync_interval: always`.

`test_rel_datapath_leaf_kill.py` kills the leaf with SIGKILL, which loses nothing either
way: the page cache outlives the process. Here the leaf's store lives on a filesystem that
forgets whatever was not fsynced when the "power" goes (`datapath_powercut.py`), so the
cut does what a real one does to the disk.

The gateway is offline (hub unreachable) while sensors publish, so the readings sit in the
leaf's store, which is where a power cut can hurt. Then: the edge daemon (a process) and
the leaf are SIGKILLed, the unsynced writes are thrown away, both start again, the uplink
comes back, and the hub is compared with what the leaf acknowledged.

    sync_interval: always   0 acknowledged readings lost
    default (2 min)         the control: it loses what it stored since its last sync,
                            which shows the test can see a loss

An MQTT PUBACK from the leaf comes after JetStream has stored (and, with `always`,
fsynced) the reading: `test_an_mqtt_puback_means_stored_even_on_a_slow_disk` pins that,
with each fsync made to take 20 ms. (It is not so when the store *refuses* the write,
under `refuse_new`: see test_rel_datapath_store_full.py.)

Skipped where FUSE cannot be mounted (no /dev/fuse, no libfuse2 or fusepy, no right to
mount): see docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
from datapath_kit import (
    DEADLINE_S,
    GW,
    EdgeProcess,
    HubView,
    LeafView,
    MqttLoad,
    eventually,
    linked_pair,
    verdict,
    write_edge_config,
)
from datapath_powercut import FSYNC_DELAY, TRIGGER, available

from shared import streams, subjects
from shared.compat import timeout

if TYPE_CHECKING:
    from conftest import Figures

DEVICES = ("u0", "u1", "u2", "u3")
HERE = Path(__file__).parent


@asynccontextmanager
async def forgetful_mount(base: Path) -> AsyncIterator[Path]:
    """Mount the power-cut filesystem at `base/mnt` (skip the test if this machine can't)."""
    why = available()
    if why is not None:
        pytest.skip(f"no power-cut filesystem here: {why}")
    mount = base / "mnt"
    mount.mkdir(parents=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "datapath_powercut.py"), str(base / "backing"), str(mount),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        try:
            await eventually(lambda: os.path.ismount(mount) or proc.returncode is not None, "mount")
        except AssertionError:
            pytest.skip("the power-cut filesystem did not mount in time")
        if proc.returncode is not None:
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode(errors="replace").strip()[-300:]
            pytest.skip(f"cannot mount FUSE here: {err}")
        yield mount
    finally:
        if proc.returncode is None:
            umount = await asyncio.create_subprocess_exec(
                "umount", str(mount), stderr=subprocess.DEVNULL
            )
            await umount.wait()
            try:
                async with timeout(10):
                    await proc.communicate()
            except asyncio.TimeoutError:
                proc.send_signal(signal.SIGKILL)
                await proc.communicate()


def pull_the_plug(mount: Path) -> None:
    """Throw away every write to the mount that was not fsynced."""
    with (mount / TRIGGER.lstrip("/")).open("w") as f:
        f.write("now")


def set_fsync_delay(mount: Path, seconds: float) -> None:
    (mount / FSYNC_DELAY.lstrip("/")).write_text(str(seconds))


@pytest.mark.parametrize("sync", ["always", "default"])
async def test_gateway_power_cut_loses_nothing_acknowledged_with_sync_always(
    tmp_path: Path, no_nats_left: None, figures: Figures, sync: Literal["always", "default"]
) -> None:
    per_device = figures.scale(ci=40, full=400, name="readings_per_device_offline")
    async with forgetful_mount(tmp_path / "fs") as mount:
        config = write_edge_config(tmp_path / "edge.toml", "")
        async with linked_pair(
            tmp_path / "nats", sync_always=sync == "always", leaf_store=mount / "leaf"
        ) as (topo, relay):
            write_edge_config(tmp_path / "edge.toml", topo.leaf.client_url)
            edge = EdgeProcess(config, tmp_path / "edge.log")
            try:
                async with (
                    HubView.open(topo.hub.client_url) as hub,
                    MqttLoad(topo.leaf.mqtt_url or "", DEVICES, window=8) as load,
                ):
                    await edge.start()
                    await edge.wait_ready()  # the UPLINK stream exists
                    await relay.cut("refuse")  # offline: readings stay in the leaf
                    for _ in range(per_device):
                        for device in DEVICES:
                            load.publish_one(device)
                        await load.changed.wait_for(lambda: load.in_flight <= 4)
                    await load.settle()
                    async with LeafView.open(topo.leaf.client_url) as leaf:
                        stored = set(await leaf.stored_ids())

                    # The power cut: every process of the gateway dies, the disk forgets.
                    await edge.kill9()
                    await topo.leaf.kill()
                    await asyncio.to_thread(pull_the_plug, mount)

                    await topo.leaf.start()
                    await edge.start()
                    await edge.wait_ready()
                    await relay.heal()
                    await topo.wait_linked()
                    # One more reading each after the restart: once those are at the hub
                    # and the leaf is empty, whatever the leaf still had is there too.
                    for device in DEVICES:
                        load.publish_one(device)
                    await load.settle()
                    await eventually(lambda: hub.per_device_has_last(load.sent), "last readings")
                    async with LeafView.open(topo.leaf.client_url) as leaf:
                        assert await leaf.wait_empty(DEADLINE_S)
                    result = verdict(load.acked, await hub.per_device())
                    at_hub = set(await hub.ids("r"))
            finally:
                await edge.aclose()

    offline = {subjects.msg_id(GW, d, "r", s) for d in DEVICES for s in range(per_device)}
    lost_stored = len((stored & offline) - at_hub)
    figures.record(
        sync_interval=sync,
        acknowledged_offline=len(offline),
        stored_at_cut=len(stored & offline),
        acked_not_stored_at_cut=len(offline - stored),
        lost_of_stored=lost_stored,
        **result.figures(),
    )
    if sync == "always":
        assert lost_stored == 0, "a reading the leaf had stored did not survive the cut"
        assert result.lost == 0, result.lost_examples
    else:
        assert lost_stored > 0, "the control lost nothing: the power-cut stand-in saw no loss"
    assert result.duplicated == 0


async def test_an_mqtt_puback_means_stored_even_on_a_slow_disk(
    tmp_path: Path, no_nats_left: None, figures: Figures
) -> None:
    readings = 5
    async with (
        forgetful_mount(tmp_path / "fs") as mount,
        linked_pair(tmp_path / "nats", leaf_store=mount / "leaf") as (topo, _relay),
    ):
        async with LeafView.open(topo.leaf.client_url) as leaf:
            await streams.ensure_stream(leaf.js, streams.uplink_stream(GW))
        async with MqttLoad(topo.leaf.mqtt_url or "", DEVICES, window=64) as load:
            set_fsync_delay(mount, 0.02)  # a slow card: every fsync 20 ms
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(readings):
                for device in DEVICES:
                    load.publish_one(device)
            await load.settle()  # every one PUBACKed
            took = loop.time() - started
            async with LeafView.open(topo.leaf.client_url) as leaf:
                stored_at_ack = (await leaf.backlog())[0]
            await topo.leaf.kill()  # kill -9 at once
            set_fsync_delay(mount, 0)
            await asyncio.to_thread(pull_the_plug, mount)  # and the power with it
        await topo.leaf.start()
        async with LeafView.open(topo.leaf.client_url) as leaf:
            kept = set(await leaf.stored_ids())
    acked = {subjects.msg_id(GW, d, "r", s) for d, seqs in load.acked.items() for s in seqs}
    figures.record(
        acknowledged=len(acked),
        stored_when_all_acked=stored_at_ack,
        puback_burst_s=took,
        lost_after_kill_and_cut=len(acked - kept),
    )
    assert stored_at_ack == len(acked) == readings * len(DEVICES)
    assert acked <= kept, f"{len(acked - kept)} acknowledged readings lost"
