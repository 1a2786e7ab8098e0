"""Fixtures for the handoff tests: both sides of a session on real nats-servers.

sides       a `Sides` on the `topology` fixture: the edge host connects to the
            gateway's leaf (hub KV, SESSIONS and snapshots across the leaf-node link),
            cloud hosts to the hub; every host and connection is closed after the test
hub_sides   the same on the `hub` fixture alone (both sides on the hub: faster, for
            tests about the protocol rather than the link)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from handoffkit import Sides

from shared import streams
from shared.natsrun import LocalTopology, NatsServer


async def _ensure_hub(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await streams.ensure_hub(nc.jetstream(domain="hub"))
    finally:
        await nc.close()


@pytest.fixture
async def sides(topology: LocalTopology) -> AsyncIterator[Sides]:
    await _ensure_hub(topology.hub.client_url)
    kit = Sides(edge_url=topology.leaf.client_url, cloud_url=topology.hub.client_url)
    yield kit
    await kit.close()


@pytest.fixture
async def hub_sides(hub: NatsServer) -> AsyncIterator[Sides]:
    await _ensure_hub(hub.client_url)
    kit = Sides(edge_url=hub.client_url, cloud_url=hub.client_url)
    yield kit
    await kit.close()
