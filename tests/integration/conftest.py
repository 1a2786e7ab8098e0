"""Fixtures of the integration tests: the real parts on a real hub + leaf (`topology`).

cloud      a started `Orchestrator` (planner on) against the topology's hub; closed after
           the test, and must not have failed
edge       factory: `edge()` returns a not yet started `EdgeDaemon` for gw1 on the leaf,
           with its state in tmp_path (the same state dir each call: a restart)
hub_nc     a plain NATS client on the hub, to watch what the edge forwards
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from integkit import cloud_config, edge_config, hub_client
from nats.aio.client import Client

from cloud.orchestrator import Orchestrator
from edge.daemon import EdgeDaemon
from shared.natsrun import LocalTopology

EdgeFactory = Callable[..., EdgeDaemon]


@pytest.fixture
async def cloud(topology: LocalTopology, tmp_path: Path) -> AsyncIterator[Orchestrator]:
    async with Orchestrator(cloud_config(topology, tmp_path / "cloud")) as orch:
        yield orch
    assert orch.failed is None, f"the orchestrator failed: {orch.failed!r}"


@pytest.fixture
def edge(topology: LocalTopology, tmp_path: Path) -> EdgeFactory:
    def make(**fields: Any) -> EdgeDaemon:
        return EdgeDaemon(edge_config(topology, tmp_path / "edge", **fields))

    return make


@pytest.fixture
async def hub_nc(topology: LocalTopology) -> AsyncIterator[Client]:
    async with hub_client(topology) as nc:
        yield nc
