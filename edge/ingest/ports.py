"""The seams around the hot path, each a tiny interface with an in-memory twin (`memory`).

ReadingSource   where raw readings come from (the leaf's NATS subjects, an MQTT broker)
CommandSink     how a command reaches a device (the same broker, its command topic)
UplinkSink      where decisions, twin reports and events go (`edge.uplink.Uplink`)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

# (topic or subject, payload, receipt time from time.perf_counter_ns())
Deliver = Callable[[str, bytes, int], Awaitable[None]]


class ReadingSource(Protocol):
    async def start(self, deliver: Deliver) -> None:
        """Subscribe; `deliver` is awaited once per message, in arrival order."""
        ...

    async def stop(self) -> None:
        """Unsubscribe: no `deliver` call starts after this returns. Safe twice."""
        ...

    @property
    def connected(self) -> bool: ...


@runtime_checkable
class CommandSink(Protocol):
    """A source that is also a sink (MQTT) answers on the connection readings came in on."""

    async def send(self, device: str, payload: bytes) -> None:
        """Publish to the device's command topic without waiting for the device."""
        ...


class UplinkSink(Protocol):
    def submit(
        self,
        kind: str,
        device: str,
        key: str | int,
        payload: bytes,
        *,
        traceparent: str | None = None,
    ) -> None:
        """Queue one message for the hub; never blocks."""
        ...


class UplinkHandle(UplinkSink, Protocol):
    async def start(self) -> None: ...

    async def flush(self) -> None:
        """Await every pending leaf PubAck."""
        ...

    async def aclose(self) -> None: ...

    def stats(self) -> Any:
        """`edge.uplink.UplinkStats`: `backlog_msgs`, `hub_connected`, ..."""
        ...
