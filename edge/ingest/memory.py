"""In-memory twins of the ingest seams, for tests and embedding: no broker, no threads.

MemorySource    `inject(topic, payload)` hands a reading to the pipeline and returns
                once it has been handled
MemorySink      records every command; `await sink.next()` waits for the next one
MemoryUplink    records every submission, like `edge.uplink.Uplink.submit`; `await
                uplink.next()` waits for the next one
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from edge.ingest.ports import Deliver


class MemorySource:
    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def stop(self) -> None:
        self._deliver = None

    @property
    def connected(self) -> bool:
        return self._deliver is not None

    async def inject(self, topic: str, payload: bytes) -> None:
        if self._deliver is None:
            raise RuntimeError("the source is not started")
        await self._deliver(topic, payload, time.perf_counter_ns())


@dataclass(frozen=True, slots=True)
class Sent:
    device: str
    payload: bytes


class MemorySink:
    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._queue: asyncio.Queue[Sent] = asyncio.Queue()

    async def send(self, device: str, payload: bytes) -> None:
        item = Sent(device, payload)
        self.sent.append(item)
        self._queue.put_nowait(item)

    async def next(self) -> Sent:
        return await self._queue.get()


@dataclass(frozen=True, slots=True)
class Submitted:
    kind: str
    device: str
    key: str | int
    payload: bytes
    traceparent: str | None


@dataclass(frozen=True, slots=True)
class MemoryUplinkStats:
    submitted: int
    forwarded: int
    backlog_msgs: int = 0
    hub_connected: bool = True


class MemoryUplink:
    """Everything submitted is "forwarded" at once; `flush()` has nothing to wait for."""

    def __init__(self) -> None:
        self.submitted: list[Submitted] = []
        self.started = False
        self.closed = False
        self._queue: asyncio.Queue[Submitted] = asyncio.Queue()

    async def start(self) -> None:
        self.started = True

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True

    def stats(self) -> MemoryUplinkStats:
        n = len(self.submitted)
        return MemoryUplinkStats(submitted=n, forwarded=n)

    def submit(
        self,
        kind: str,
        device: str,
        key: str | int,
        payload: bytes,
        *,
        traceparent: str | None = None,
    ) -> None:
        item = Submitted(kind, device, key, payload, traceparent)
        self.submitted.append(item)
        self._queue.put_nowait(item)

    async def next(self) -> Submitted:
        return await self._queue.get()

    def of_kind(self, kind: str) -> list[Submitted]:
        return [s for s in self.submitted if s.kind == kind]
