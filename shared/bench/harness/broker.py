"""The broker side of a benchmark: a hub + leaf topology ready for a daemon, and counts
read from JetStream (what reached the hub, what waits at the leaf)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import nats

from shared import streams, subjects
from shared.natsrun import LocalTopology

GATEWAY = "gw1"


@asynccontextmanager
async def topology(
    base_dir: Path, gateway: str = GATEWAY, *, sync_always: bool = True
) -> AsyncIterator[LocalTopology]:
    """Hub + leaf, by default with `sync_interval: always` (DESIGN's setting), hub streams made."""
    async with LocalTopology(gateway, base_dir=base_dir, sync_always=sync_always) as topo:
        nc = await nats.connect(topo.hub.client_url)
        try:
            await streams.ensure_hub(nc.jetstream())
        finally:
            await nc.close()
        yield topo


async def delete_uplink(leaf_url: str, gateway: str) -> None:
    """Remove the leaf's UPLINK stream, so a run without the daemon stores nothing."""
    from nats.js.errors import NotFoundError

    nc = await nats.connect(leaf_url)
    try:
        js = nc.jetstream(domain=subjects.gateway_domain(gateway))
        with suppress(NotFoundError):
            await js.delete_stream(subjects.UPLINK_STREAM)
    finally:
        await nc.close()
