"""In-process fan-out of fleet and agent events to server-sent-event streams.

Every replica's projector publishes what it sees on FLEET and the `twins` KV watch, so
a UI connected to any replica sees the whole fleet. A subscriber that cannot keep up
loses its oldest events (counted in `dropped`), never slows the publisher down.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger(__name__)

QUEUE_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class FleetEvent:
    id: int
    type: str
    data: dict[str, Any]


class Subscription:
    def __init__(self, bus: EventBus, types: Collection[str] | None) -> None:
        self._bus = bus
        self._types = frozenset(types) if types else None
        self._queue: asyncio.Queue[FleetEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0

    def wants(self, event: FleetEvent) -> bool:
        return self._types is None or event.type in self._types

    def offer(self, event: FleetEvent | None) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self.dropped += 1

    async def next(self, timeout_s: float) -> FleetEvent | None:
        """The next event; raises TimeoutError when none came, None when the bus closed."""
        return await asyncio.wait_for(self._queue.get(), timeout_s)

    def close(self) -> None:
        self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[FleetEvent]:
        while (event := await self._queue.get()) is not None:
            yield event


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, types: Collection[str] | None = None) -> Subscription:
        """A subscription to `types` (all when None); `close()` it when done."""
        sub = Subscription(self, types)
        if self._closed:
            sub.offer(None)
        else:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, type_: str, data: dict[str, Any]) -> None:
        if self._closed or not self._subs:
            return
        event = FleetEvent(next(self._ids), type_, data)
        for sub in list(self._subs):
            if sub.wants(event):
                sub.offer(event)

    def close(self) -> None:
        """End every subscription (their streams finish), e.g. before the API shuts down."""
        self._closed = True
        for sub in list(self._subs):
            sub.offer(None)
        self._subs.clear()
