"""Counting what reached the hub: readings of one gateway in the FLEET stream."""

from __future__ import annotations

from types import TracebackType

import nats
from nats.aio.client import Client

from shared import subjects


class FleetCounter:
    """`async with FleetCounter(hub_url, "gw1") as hub: await hub.count()`."""

    def __init__(self, hub_url: str, gateway: str, kind: str = "r") -> None:
        self._url = hub_url
        self._filter = f"fleet.{gateway}.{kind}.>"
        self._nc: Client | None = None

    async def __aenter__(self) -> FleetCounter:
        self._nc = await nats.connect(self._url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._nc is not None:
            await self._nc.close()

    async def count(self) -> int:
        assert self._nc is not None
        info = await self._nc.jetstream().stream_info(
            subjects.FLEET_STREAM, subjects_filter=self._filter
        )
        return sum((info.state.subjects or {}).values())
