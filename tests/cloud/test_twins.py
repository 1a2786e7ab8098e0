"""Twins against a real hub: desired → DOWNLINK → report → converged; drift and silence.

A simulated edge subscribes to `downlink.<gw>.desired.<dev>` and answers with the
`ReportedState` a real edge's twin keeper sends, so each step waits on a real message.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from cloudkit import GW, WAIT_S, FleetPublisher, OrchestratorFactory, applied, metric
from nats.aio.client import Client
from nats.aio.msg import Msg

from cloud.orchestrator import Orchestrator
from cloud.twins.record import TwinRecord
from shared import codec, subjects
from shared.compat import timeout
from shared.messages import DesiredState


async def downlink_inbox(nc: Client, device: str) -> asyncio.Queue[Msg]:
    inbox: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_msg(msg: Msg) -> None:
        inbox.put_nowait(msg)

    await nc.subscribe(subjects.downlink(GW, "desired", device), cb=on_msg)
    await nc.flush()
    return inbox


async def next_desired(inbox: asyncio.Queue[Msg]) -> tuple[DesiredState, Msg]:
    async with timeout(WAIT_S):
        msg = await inbox.get()
    return codec.decode(msg.data, DesiredState), msg


async def test_desired_change_converges_when_the_matching_report_arrives(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher, hub_nc: Client
) -> None:
    orch = await orchestrator()
    await fleet.reading("fan1", 0)
    await orch.wait_for(lambda: applied(orch, "fan1", 1), WAIT_S)
    inbox = await downlink_inbox(hub_nc, "fan1")

    async with httpx.AsyncClient(base_url=orch.url) as client:
        started = time.perf_counter()
        response = await client.put(f"/api/devices/{GW}/fan1/desired", json={"on": True})
        assert response.status_code == 200, response.text
        assert response.json() == {"gw": GW, "device": "fan1", "version": 1, "state": {"on": True}}

        desired, msg = await next_desired(inbox)  # the edge's side
        assert (desired.version, desired.state) == (1, {"on": True})
        assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == f"{GW}/fan1/desired/1/1"
        await fleet.report("fan1", desired.version, dict(desired.state))
        await orch.wait_for(lambda: _converged(orch, "fan1", 1), WAIT_S)
        elapsed_ms = (time.perf_counter() - started) * 1000

        body = (await client.get(f"/api/devices/{GW}/fan1")).json()
    assert body["converged"] and body["reported_version"] == 1 == body["desired_version"]
    assert body["reported"] == {"on": True}
    assert 0 <= body["convergence_ms"] <= elapsed_ms + 5
    assert metric(orch, "baton_cloud_convergence_seconds_count") == 1


def _converged(orch: Orchestrator, device: str, version: int) -> bool:
    twin = orch.readmodel.twin(GW, device)
    return twin is not None and twin.converged_version == version and twin.converged


async def test_drift_is_resent_until_reported(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher, hub_nc: Client
) -> None:
    orch = await orchestrator(resend_after_s=0.2)
    await fleet.reading("fan1", 0)
    await orch.wait_for(lambda: applied(orch, "fan1", 1), WAIT_S)
    inbox = await downlink_inbox(hub_nc, "fan1")

    record = await orch.desired.set(GW, "fan1", {"speed": 3})
    first, _ = await next_desired(inbox)
    again, msg = await next_desired(inbox)  # nobody reported: the reconcile loop re-sends
    assert first.version == again.version == record.desired_version == 1
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == f"{GW}/fan1/desired/1/2"

    await fleet.report("fan1", 1, {"speed": 3})
    await orch.wait_for(lambda: _converged(orch, "fan1", 1), WAIT_S)
    assert metric(orch, "baton_cloud_desired_sent_total", cause="resend") >= 1


async def test_silent_device_goes_offline_and_gets_its_desired_state_when_back(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher, hub_nc: Client
) -> None:
    orch = await orchestrator(silent_after_s=0.5, resend_after_s=60.0)
    await fleet.reading("pump1", 0)
    await orch.wait_for(lambda: applied(orch, "pump1", 1), WAIT_S)
    inbox = await downlink_inbox(hub_nc, "pump1")
    await orch.desired.set(GW, "pump1", {"load": 0.5})
    await next_desired(inbox)

    await orch.wait_for(lambda: not _twin(orch, "pump1").online, WAIT_S)
    assert metric(orch, "baton_cloud_devices_marked_offline_total") == 1

    # Back with a backlog: it is online again, and the un-applied desired state is sent
    # at once instead of after resend_after_s (60 s here).
    for seq in range(1, 4):
        await fleet.reading("pump1", seq)
    desired, msg = await next_desired(inbox)
    assert desired.version == 1
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == f"{GW}/pump1/desired/1/2"
    await orch.wait_for(lambda: _twin(orch, "pump1").readings == 4, WAIT_S)


async def test_offline_status_marks_the_device_offline(
    orchestrator: OrchestratorFactory, fleet: FleetPublisher
) -> None:
    orch = await orchestrator()
    await fleet.reading("pump1", 0)
    await orch.wait_for(lambda: applied(orch, "pump1", 1), WAIT_S)
    await fleet.status("pump1", False, key=1)  # the device's MQTT last will
    await orch.wait_for(lambda: _twin(orch, "pump1").status_hlc > 0, WAIT_S)
    assert not _twin(orch, "pump1").online
    await fleet.status("pump1", True, key=2)
    await orch.wait_for(lambda: _twin(orch, "pump1").online, WAIT_S)


def _twin(orch: Orchestrator, device: str) -> TwinRecord:
    twin = orch.readmodel.twin(GW, device)
    assert twin is not None
    return twin
