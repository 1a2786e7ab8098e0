"""Edge + cloud + a device over MQTT, on a real hub and gateway leaf (`topology`).

The whole path: device → leaf MQTT → UPLINK → edge forwarder → hub FLEET → cloud ingest
→ twin in the API; API desired state → DOWNLINK → edge twin keeper → device command →
device ack → report → converged.
Then the edge goes away for longer than the hub's duplicate window while the device
keeps publishing (and re-sends readings the hub already has); when it comes back its
backlog is applied exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cloudkit import GW, WAIT_S, MqttDevice, OrchestratorFactory, applied, metric
from nats.js import JetStreamContext

from cloud.orchestrator import Orchestrator
from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from shared import streams, subjects
from shared.natsrun import LocalTopology, NatsServer
from shared.natsrun.monitor import poll_until

# A shrunken JetStream duplicate window, so "longer than the window" takes a second.
SHORT_WINDOW_S = 1.0


@pytest.fixture
def hub(topology: LocalTopology) -> NatsServer:
    """The cloud fixtures (`orchestrator`, `hub_js`) run against the topology's hub."""
    return topology.hub


@pytest.fixture
def edge_config(topology: LocalTopology, tmp_path: Path) -> EdgeConfig:
    return EdgeConfig(
        gateway=GW,
        nats_url=topology.leaf.client_url,
        state_dir=tmp_path / "edge",
        http={"enabled": False},
        uplink={"enabled": True, "hub_ack_timeout_s": 1.0, "retry_backoff_max_s": 0.3},
        downlink={"enabled": True},
        store={"flush_interval_ms": 20},
    )


@pytest.fixture
async def device(topology: LocalTopology) -> AsyncIterator[MqttDevice]:
    assert topology.leaf.mqtt_url is not None
    async with MqttDevice("pump1", topology.leaf.mqtt_url) as dev:
        yield dev


async def test_device_twin_converges_and_a_long_outage_backlog_applies_once(
    orchestrator: OrchestratorFactory,
    edge_config: EdgeConfig,
    device: MqttDevice,
    hub_js: JetStreamContext,
    topology: LocalTopology,
) -> None:
    orch = await orchestrator()
    async with EdgeDaemon(edge_config):
        for seq in range(20):
            await device.publish(seq, temperature=40.0 + seq % 5)
        await orch.wait_for(lambda: applied(orch, "pump1", 20), WAIT_S)
        await device.answer_commands()  # the edge reports a version only once acked
        await _desired_converges_through_the_edge(orch)

    # The edge is gone; the leaf keeps storing. The device sends 40 new readings and
    # re-sends 10 the hub already has (its own QoS 1 retries after a reconnect).
    await _shrink_duplicate_window(hub_js)
    for seq in [*range(5, 15), *range(20, 60)]:
        await device.publish(seq, temperature=41.0)
    await _leaf_holds(topology, 50)
    # The only deliberate wait: let the hub forget the ids of what it stored before.
    await asyncio.sleep(SHORT_WINDOW_S * 1.5)

    async with EdgeDaemon(edge_config):
        await orch.wait_for(lambda: applied(orch, "pump1", 60), WAIT_S)
        twin = orch.readmodel.twin(GW, "pump1")
        assert twin is not None
        assert (twin.readings, twin.seq_floor, twin.seq_ranges) == (60, 59, [])
        # The re-sent ten crossed the hub's dedupe (window expired) and reached ingest,
        # which recognised them: applied 60, not 70.
        await orch.wait_for(lambda: _duplicates(orch) >= 10, WAIT_S)
        assert metric(orch, "baton_cloud_ingest_messages_total", kind="r", outcome="applied") == 60
        async with httpx.AsyncClient(base_url=orch.url) as http:
            body = (await http.get(f"/api/devices/{GW}/pump1")).json()
        assert body["readings"] == 60 and body["last_reading"]["seq"] == 59


def _duplicates(orch: Orchestrator) -> float:
    return metric(orch, "baton_cloud_ingest_messages_total", kind="r", outcome="duplicate")


async def _desired_converges_through_the_edge(orch: Orchestrator) -> None:
    async with httpx.AsyncClient(base_url=orch.url) as http:
        listed = (await http.get("/api/fleet")).json()
        assert [(d["gw"], d["device"]) for d in listed["devices"]] == [(GW, "pump1")]
        started = time.perf_counter()
        put = await http.put(f"/api/devices/{GW}/pump1/desired", json={"set_load.load": 0.5})
        assert put.status_code == 200 and put.json()["version"] == 1
        await orch.wait_for(lambda: _converged(orch, 1), WAIT_S)
        elapsed_ms = (time.perf_counter() - started) * 1000
        body = (await http.get(f"/api/devices/{GW}/pump1")).json()
    assert body["reported_version"] == 1 and body["reported"] == {"set_load.load": 0.5}
    assert body["converged"] and 0 <= body["convergence_ms"] <= elapsed_ms + 5


def _converged(orch: Orchestrator, version: int) -> bool:
    twin = orch.readmodel.twin(GW, "pump1")
    return twin is not None and twin.converged_version == version


async def _shrink_duplicate_window(js: JetStreamContext) -> None:
    config = dataclasses.replace(streams.fleet_stream(), duplicate_window=SHORT_WINDOW_S)
    await js.update_stream(config=config)


async def _leaf_holds(topology: LocalTopology, count: int) -> None:
    """Wait until the leaf's UPLINK stream has stored `count` messages (server state)."""
    import nats

    nc = await nats.connect(topology.leaf.client_url)
    try:
        js = nc.jetstream(domain=subjects.gateway_domain(GW))

        async def stored() -> bool:
            info = await js.stream_info(subjects.UPLINK_STREAM)
            return info.state.messages >= count

        await poll_until(stored, timeout_s=WAIT_S)
    finally:
        await nc.close()
