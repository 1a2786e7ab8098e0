"""Fixtures for the cloud tests (real nats-server from the root `hub` fixture).

cloud_config   factory: a `CloudConfig` against `hub`, state in tmp_path, API on a free
               port, planner off, one ingest worker (stream order), fast reconcile
orchestrator   factory: `await orchestrator(replica="a", **fields)` starts a replica;
               every one is closed after the test (an aborted one is already closed)
fleet          a `FleetPublisher`: publishes on FLEET the way the edge forwarder does
               (original payload bytes + Nats-Msg-Id, Baton-Gateway, Baton-Hlc, traceparent)
hub_js         a JetStream context on the hub, with the hub layout created
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from cloudkit import ConfigFactory, FleetPublisher, OrchestratorFactory
from nats.aio.client import Client
from nats.js import JetStreamContext

from cloud.config import CloudConfig
from cloud.orchestrator import Orchestrator
from shared import streams
from shared.natsrun import NatsServer


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def cloud_config(hub: NatsServer, tmp_path: Path) -> ConfigFactory:
    def make(replica: str = "a", **fields: Any) -> CloudConfig:
        data: dict[str, Any] = {
            "nats_url": hub.client_url,
            "replica": replica,
            "state_dir": tmp_path / f"cloud-{replica}",
            "http": {"port": 0},
            "ingest": {"workers": 1, "batch": 64},
            "planner": {"enabled": False},
            "reconcile_interval_s": 0.2,
        }
        return CloudConfig(**_merge(data, fields))

    return make


@pytest.fixture
async def orchestrator(cloud_config: ConfigFactory) -> AsyncIterator[OrchestratorFactory]:
    started: list[Orchestrator] = []

    async def start(replica: str = "a", **fields: Any) -> Orchestrator:
        orch = Orchestrator(cloud_config(replica, **fields))
        await orch.start()
        started.append(orch)
        return orch

    yield start
    for orch in reversed(started):
        await orch.aclose()
        assert orch.failed is None, f"replica {orch.replica} failed: {orch.failed!r}"


@pytest.fixture
async def hub_nc(hub: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(hub.client_url)
    yield nc
    await nc.close()


@pytest.fixture
async def hub_js(hub_nc: Client) -> JetStreamContext:
    js = hub_nc.jetstream()
    await streams.ensure_hub(js)
    return js


@pytest.fixture
def fleet(hub_js: JetStreamContext) -> FleetPublisher:
    return FleetPublisher(hub_js)
