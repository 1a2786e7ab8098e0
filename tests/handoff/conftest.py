"""Fixtures for the handoff tests: both sides of a session on real nats-servers.

sides       a `Sides` on the `topology` fixture: the edge host connects to the
            gateway's leaf (hub KV, SESSIONS and snapshots across the leaf-node link),
            cloud hosts to the hub; every host and connection is closed after the test
hub_sides   the same on the `hub` fixture alone (both sides on the hub: faster, for
            tests about the protocol rather than the link)

Both check, after closing everything, that no `RTCPeerConnection` was left open: aiortc
keeps its ICE and SCTP tasks running until `close()`.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import nats
import pytest
from handoffkit import Sides

from shared import streams
from shared.natsrun import LocalTopology, NatsServer


def open_peer_connections() -> list[object]:
    from aiortc import RTCPeerConnection

    gc.collect()
    return [
        pc
        for pc in gc.get_objects()
        if isinstance(pc, RTCPeerConnection) and pc.signalingState != "closed"
    ]


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
    assert not open_peer_connections()


@pytest.fixture
async def hub_sides(hub: NatsServer) -> AsyncIterator[Sides]:
    await _ensure_hub(hub.client_url)
    kit = Sides(edge_url=hub.client_url, cloud_url=hub.client_url)
    yield kit
    await kit.close()
    assert not open_peer_connections()
