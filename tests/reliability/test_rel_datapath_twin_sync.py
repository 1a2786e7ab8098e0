"""Item 8: twin sync under reordering and reconnects — every device converges to the
latest desired version, and no device is ever handed an older one after a newer.

The whole path runs: the cloud sets desired state (`DesiredService.set`, KV then DOWNLINK),
the edge daemon's twin keeper turns it into device commands, the devices (on the leaf)
acknowledge each command, the keeper reports the applied version, the cloud's ingest folds
the report into the twin. Meanwhile the test makes it hard:

    reordering   stale desired versions (older than the device's current one) are
                 injected into DOWNLINK, as a redelivery after a lost ack would bring them
    reconnects   the leaf node link is cut and healed again and again; the edge daemon is
                 restarted (its keeper reloads the applied versions from SQLite)

Checked at the devices (every command they receive, in order) and in the hub KV.
Figures: p50/p99 convergence (desired set → the report of that version or a newer one
at the hub), stale versions injected, stale versions a device was handed.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
import pytest
from datapath_kit import (
    GW,
    HubView,
    Signal,
    cloud_replica,
    eventually,
    linked_pair,
    reading,
)

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from shared import codec, subjects
from shared.compat import timeout
from shared.messages import Command, CommandAck, DesiredState, ReportedState
from shared.natsrun import LocalTopology

if TYPE_CHECKING:
    from conftest import Figures

DEVICES = [f"t{i}" for i in range(10)]
UPDATES_PER_S = 10.0  # the cloud's desired-state changes for one gateway (below its downlink rate)
# A device takes a moment to act and answer: versions overlap in flight, so a stale one
# can arrive while a newer one waits for its acks.
ACK_DELAY_S = (0.0, 0.08)
OUTAGE_S = 0.5


def edge_config(leaf_url: str, state: Path) -> EdgeConfig:
    return EdgeConfig(
        gateway=GW,
        nats_url=leaf_url,
        state_dir=state,
        http={"enabled": False},
        uplink={"enabled": True, "hub_ack_timeout_s": 1.0, "retry_backoff_max_s": 0.3},
        downlink={"enabled": True, "retry_backoff_max_s": 0.3},
        store={"flush_interval_ms": 20},
    )


def state_for(i: int) -> dict[str, Any]:
    return {"set_load.load": round((i % 100) / 100, 2)}


@dataclass
class Devices:
    """The devices on the leaf: every command they get, in order; each acked ok after a
    short random delay (the device acting)."""

    nc: Any
    received: dict[str, list[tuple[int, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    hold: bool = False
    """Answer nothing until `release()`: a device slow to act."""
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    _acking: set[asyncio.Task[None]] = field(default_factory=set)
    _held: list[Command] = field(default_factory=list)
    _changed: Signal = field(default_factory=Signal)

    @classmethod
    @asynccontextmanager
    async def open(cls, leaf_url: str, *, hold: bool = False) -> AsyncIterator[Devices]:
        nc = await nats.connect(leaf_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        devices = cls(nc, hold=hold)
        try:
            await nc.subscribe("baton.d.*.cmd", cb=devices._on_command)
            await nc.flush()
            yield devices
        finally:
            await asyncio.gather(*devices._acking, return_exceptions=True)
            await nc.close()

    async def _on_command(self, msg: Any) -> None:
        cmd = codec.decode(msg.data, Command)
        source = cmd.source or ""
        version = int(source.removeprefix("twin:v")) if source.startswith("twin:v") else -1
        self.received[cmd.device].append((version, dict(cmd.params)))
        self._changed.notify()
        if self.hold:
            self._held.append(cmd)
        else:
            self._answer(cmd, self.rng.uniform(*ACK_DELAY_S))

    def _answer(self, cmd: Command, delay_s: float) -> None:
        task = asyncio.create_task(self._ack(cmd, delay_s), name="device-ack")
        self._acking.add(task)
        task.add_done_callback(self._acking.discard)

    async def _ack(self, cmd: Command, delay_s: float) -> None:
        await asyncio.sleep(delay_s)  # the device acting, not a synchronisation
        ack = CommandAck(cmd_id=cmd.cmd_id, device=cmd.device, ok=True)
        subject = subjects.mqtt_to_nats(subjects.mqtt_ack(cmd.device))
        await self.nc.publish(subject, codec.encode(ack))

    def release(self, device: str) -> None:
        """Acknowledge every held command of `device` now."""
        for cmd in [c for c in self._held if c.device == device]:
            self._held.remove(cmd)
            self._answer(cmd, 0.0)

    async def wait_for(self, device: str, version: int, timeout_s: float = 20.0) -> None:
        """Until `device` was handed a command of `version`."""
        async with timeout(timeout_s):
            await self._changed.wait_for(
                lambda: any(v == version for v, _ in self.received[device])
            )

    def handed_older(self) -> int:
        """Commands of a version older than one the same device had already been given."""
        older = 0
        for commands in self.received.values():
            newest = -1
            for version, _ in commands:
                older += version < newest
                newest = max(newest, version)
        return older


class Convergence:
    """Desired set → the first report at the hub of that version or a newer one."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.pending: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.took: list[float] = []
        self.reported: dict[str, int] = defaultdict(int)

    def desired(self, device: str, version: int) -> None:
        self.pending[device].append((version, self._loop.time()))

    async def on_report(self, msg: Any) -> None:
        report = codec.decode(msg.data, ReportedState)
        device, applied = report.device, report.applied_version
        self.reported[device] = max(self.reported[device], applied)
        now = self._loop.time()
        waiting = self.pending[device]
        self.took += [now - t for v, t in waiting if v <= applied]
        self.pending[device] = [(v, t) for v, t in waiting if v > applied]


async def inject_stale(hub: HubView, device: str, version: int, tag: int) -> None:
    """An older desired version on DOWNLINK, as a late redelivery would bring it."""
    msg = DesiredState(device=device, gw=GW, version=version, state=state_for(version))
    headers = {subjects.HDR_MSG_ID: f"stale/{device}/{version}/{tag}"}
    await hub.js.publish(
        subjects.downlink(GW, "desired", device), codec.encode(msg), headers=headers
    )


async def test_twins_converge_to_the_latest_version_through_reordering_and_reconnects(
    tmp_path: Path, no_nats_left: None, figures: Figures
) -> None:
    updates = figures.scale(ci=100, full=1000, name="desired_updates")
    cuts_every = 25
    rng = random.Random(8)
    loop = asyncio.get_running_loop()
    latest: dict[str, int] = {}
    stale_injected = cuts = restarts = 0
    cfg_cloud = {"silent_after_s": 3600.0, "resend_after_s": 2.0}
    async with (
        linked_pair(tmp_path / "nats") as (topo, relay),
        HubView.open(topo.hub.client_url) as hub,
        cloud_replica(topo.hub.client_url, tmp_path, **cfg_cloud) as cloud,
        Devices.open(topo.leaf.client_url) as devices,
    ):
        convergence = Convergence()
        watch = await hub.nc.subscribe(f"fleet.{GW}.twin.*", cb=convergence.on_report)
        cfg = edge_config(topo.leaf.client_url, tmp_path / "edge")
        daemon = EdgeDaemon(cfg)
        await daemon.start()
        try:
            # The cloud knows a device once it has heard from it.
            for device in DEVICES:
                await devices.nc.publish(f"baton.d.{device}.r", reading(device, 0))
            await eventually(
                lambda: all(cloud.readmodel.twin(GW, d) for d in DEVICES), "devices known"
            )
            next_at = started = loop.time()
            for i in range(updates):
                device = DEVICES[i % len(DEVICES)]
                record = await cloud.desired.set(GW, device, state_for(i))
                latest[device] = record.desired_version
                convergence.desired(device, record.desired_version)
                if i % 3 == 2:
                    victim = rng.choice(DEVICES)
                    if latest.get(victim, 0) >= 2:
                        await inject_stale(
                            hub, victim, rng.randrange(1, latest[victim]), stale_injected
                        )
                        stale_injected += 1
                if i % cuts_every == cuts_every - 1:
                    await relay.cut("refuse")
                    await asyncio.sleep(OUTAGE_S)  # the outage: a deliberate, timed stretch
                    await relay.heal()
                    cuts += 1
                if i == updates // 2:
                    await daemon.aclose()
                    daemon = EdgeDaemon(cfg)
                    await daemon.start()
                    restarts += 1
                next_at += 1 / UPDATES_PER_S
                await asyncio.sleep(max(0.0, next_at - loop.time()))  # pacing only

            async def converged() -> bool:
                for device, version in latest.items():
                    twin = await hub.twin(device)
                    if twin is None or not (
                        twin.desired_version == twin.reported_version == version
                        and twin.converged_version == version
                    ):
                        return False
                return True

            await eventually(converged, "every twin converged on its latest version")
            took = loop.time() - started
            twins = {d: await hub.twin(d) for d in DEVICES}
        finally:
            await daemon.aclose()
            await watch.unsubscribe()

    handed_older = devices.handed_older()
    last_commands = {d: devices.received[d][-1] for d in DEVICES}
    figures.record(
        devices=len(DEVICES),
        offered_updates_per_s=UPDATES_PER_S,
        stale_injected=stale_injected,
        link_cuts=cuts,
        daemon_restarts=restarts,
        commands_to_devices=sum(len(v) for v in devices.received.values()),
        # Desired messages the gateway's downlink took (updates + stale) per second, over
        # the whole run: its throughput when it cannot keep up with the offered rate.
        downlink_msgs_per_s=(updates + stale_injected) / took,
        stale_handed_to_devices=handed_older,
        converged=sum(1 for d in DEVICES if twins[d] and twins[d].converged_version == latest[d]),
    )
    figures.samples("convergence_s", convergence.took)
    assert handed_older == 0, "a device was handed an older version after a newer one"
    for device in DEVICES:
        twin = twins[device]
        assert twin is not None
        assert twin.reported == twin.desired
        version, params = last_commands[device]
        assert version == latest[device], device
        assert {f"set_load.{k}": v for k, v in params.items()} == twin.desired


@pytest.mark.parametrize("restart", [False, True], ids=["running", "after-restart"])
async def test_a_stale_version_arriving_while_a_newer_one_is_in_flight_is_not_sent(
    topology: LocalTopology, tmp_path: Path, figures: Figures, restart: bool
) -> None:
    device = DEVICES[0]
    cfg = edge_config(topology.leaf.client_url, tmp_path / "edge")
    async with (
        HubView.open(topology.hub.client_url) as hub,
        Devices.open(topology.leaf.client_url, hold=True) as devices,
    ):

        async def desired(version: int, tag: str = "") -> None:
            msg = DesiredState(device=device, gw=GW, version=version, state=state_for(version))
            headers = {subjects.HDR_MSG_ID: f"{device}/{version}{tag}"}
            subject = subjects.downlink(GW, "desired", device)
            await hub.js.publish(subject, codec.encode(msg), headers=headers)

        daemon = EdgeDaemon(cfg)
        await daemon.start()
        try:
            await desired(1)
            await devices.wait_for(device, 1)
            devices.release(device)  # v1 acknowledged: applied
            await desired(2)
            await devices.wait_for(device, 2)  # v2 in flight: no answer yet
            await desired(3)
            await devices.wait_for(device, 3)  # v3 supersedes it, in flight too
            if restart:
                await daemon.aclose()
                daemon = EdgeDaemon(cfg)
                await daemon.start()
            await desired(2, tag="/late")  # v2 again, late
            await desired(4)  # a marker: DOWNLINK is handled in order
            await devices.wait_for(device, 4)
            devices.release(device)
        finally:
            await daemon.aclose()
    got = [v for v, _ in devices.received[device]]
    figures.record(versions_handed_to_device=str(got), older_after_newer=devices.handed_older())
    assert devices.handed_older() == 0, f"the device was handed {got}"
