"""`AuditStream`: every session event, kept by the owner, then appended to the hub's
`SESSIONS` stream on `session.<id>.ev`.

    audit = AuditStream(outbox, nc)            # a SessionRecorder: give it to the session
    await audit.start()
    ...
    await audit.flush(timeout_s=5)             # True once the hub has every event
    await audit.aclose()                       # drains (bounded), safe twice

`record(event)` writes to the outbox first (the owner's durable copy: the edge's SQLite,
the cloud's store) and returns; one publisher task sends what the outbox holds, in
order, as JetStream publishes with `Nats-Msg-Id = <session>/<seq>`, so a resend after a
lost PubAck is stored once (ADR-31 de-duplication). On the edge the connection is the
leaf's: `session.>` crosses the leaf-node link to the hub. While the hub cannot be
reached, events stay in the outbox and the publisher retries with backoff; `retry_now()`
(the uplink is back) and `flush()` cut the wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client
from nats.errors import Error as NatsError

from shared import subjects
from shared.agent.record import SessionRecorder
from shared.codec import encode
from shared.compat import timeout
from shared.messages import AgentEventBase, SessionSnapshot

log = logging.getLogger(__name__)

BATCH = 64
PUBLISH_TIMEOUT_S = 2.0
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 30.0
# aclose() gives the hub this long to take what is left; the rest waits in the outbox.
DRAIN_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    key: int
    session: str
    seq: int
    payload: bytes

    @property
    def msg_id(self) -> str:
        return f"{self.session}/{self.seq}"


class Outbox(SessionRecorder, Protocol):
    """The owner's event log, also the audit stream's retry queue."""

    async def pending(self, limit: int) -> list[OutboxEntry]:
        """The oldest events not yet on the hub, in the order they were recorded."""
        ...

    async def sent(self, entries: Sequence[OutboxEntry]) -> None: ...


class MemoryOutbox:
    """The in-memory outbox (tests, a cloud replica that keeps its own copy elsewhere)."""

    def __init__(self) -> None:
        self.events: list[AgentEventBase] = []
        self.snapshots: list[SessionSnapshot] = []
        self._queue: dict[int, OutboxEntry] = {}

    async def record(self, event: AgentEventBase) -> None:
        key = len(self.events)
        self.events.append(event)
        self._queue[key] = OutboxEntry(key, event.session, event.seq, encode(event))

    async def checkpoint(self, snapshot: SessionSnapshot) -> None:
        self.snapshots.append(snapshot)

    async def pending(self, limit: int) -> list[OutboxEntry]:
        return list(self._queue.values())[:limit]

    async def sent(self, entries: Sequence[OutboxEntry]) -> None:
        for entry in entries:
            self._queue.pop(entry.key, None)


class AuditStream:
    def __init__(self, outbox: Outbox, nc: Client | None) -> None:
        self.outbox = outbox
        self._nc = nc
        self._wake = asyncio.Event()
        self._retry = asyncio.Event()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.published = 0
        self.failures = 0

    async def start(self) -> None:
        """Start publishing (without a connection, events only reach the outbox)."""
        if self._nc is not None and self._task is None:
            self._wake.set()  # what an earlier run left in the outbox goes first
            self._task = asyncio.create_task(self._run(), name="agent-audit-publisher")

    async def record(self, event: AgentEventBase) -> None:
        await self.outbox.record(event)
        self._drained.clear()
        self._wake.set()

    async def checkpoint(self, snapshot: SessionSnapshot) -> None:
        await self.outbox.checkpoint(snapshot)

    def retry_now(self) -> None:
        self._retry.set()
        self._wake.set()

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the outbox is empty; False when it is not within `timeout_s`."""
        if self._task is None:
            return not await self.outbox.pending(1)
        self._drained.clear()
        self.retry_now()
        try:
            async with timeout(timeout_s):
                await self._drained.wait()
        except asyncio.TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await self.flush(DRAIN_TIMEOUT_S)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            if await self._drain():
                delay = RETRY_FIRST_S
                self._drained.set()
                continue
            await self._back_off(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            self._wake.set()

    async def _drain(self) -> bool:
        """Publish until the outbox is empty (True) or the hub fails a publish (False)."""
        while entries := await self.outbox.pending(BATCH):
            done = await self._publish(entries)
            if done:
                await self.outbox.sent(entries[:done])
            if done < len(entries):
                return False
        return True

    async def _publish(self, entries: Sequence[OutboxEntry]) -> int:
        assert self._nc is not None
        js = self._nc.jetstream(domain=subjects.HUB_DOMAIN)
        for done, entry in enumerate(entries):
            try:
                await js.publish(
                    subjects.session_events(entry.session), entry.payload,
                    timeout=PUBLISH_TIMEOUT_S, headers={subjects.HDR_MSG_ID: entry.msg_id},
                )  # fmt: skip
            except (NatsError, asyncio.TimeoutError) as exc:
                self.failures += 1
                log.warning("session event %s not on the hub yet: %r", entry.msg_id, exc)
                return done
            self.published += 1
        return len(entries)

    async def _back_off(self, delay: float) -> None:
        """Wait `delay`, or less when `retry_now()` says the link is back."""
        self._retry.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            async with timeout(delay):
                await self._retry.wait()
