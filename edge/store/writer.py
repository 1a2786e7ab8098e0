"""The audit writer: the hot path appends to memory, one task commits batches to SQLite.

Appending never awaits. The writer wakes when something is pending, lets a batch gather
for `flush_interval`, and commits it in one transaction on the store's thread. If the
disk falls behind, the in-memory queues keep the newest `MAX_PENDING` entries of each
kind and count what they dropped: the reflex must not stall for its own audit trail.

A part that hands its records over later than it acts (the reflex pipeline records a
decision only after its command left) registers a feeder: `flush()` calls it first, so
what a flush commits includes everything done before it was called.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import TypeVar

from edge.errors import StoreError
from edge.store.records import ActionRecord, AuditBatch, QuarantineEntry
from edge.store.rollups import RollupBook
from edge.store.runner import AsyncStore
from shared.messages import Decision

log = logging.getLogger(__name__)

T = TypeVar("T")

# Per kind, entries waiting for the disk: ~10 s of a 12k readings/s flood of decisions.
MAX_PENDING = 128 * 1024


class AuditWriter:
    def __init__(
        self, store: AsyncStore, flush_interval_s: float, *, max_pending: int = MAX_PENDING
    ) -> None:
        self._store = store
        self._interval_s = flush_interval_s
        self._decisions: deque[Decision] = deque(maxlen=max_pending)
        self._actions: deque[ActionRecord] = deque(maxlen=max_pending)
        self._quarantine: deque[QuarantineEntry] = deque(maxlen=max_pending)
        self._fencing: dict[str, int] = {}
        self._rollups = RollupBook()
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._feeders: list[Callable[[], None]] = []
        self.flushed = 0
        self.dropped = 0
        self.errors = 0

    # -- hot path: never awaits --------------------------------------------------------

    def decision(self, decision: Decision) -> None:
        self._append(self._decisions, decision)

    def action(self, record: ActionRecord) -> None:
        self._append(self._actions, record)

    def quarantine(self, entry: QuarantineEntry) -> None:
        self._append(self._quarantine, entry)

    def reading(self, device: str, metrics: Mapping[str, float], wall_ms: int) -> None:
        self._rollups.add(device, metrics, wall_ms)
        self._dirty.set()

    def fence(self, session: str, epoch: int) -> None:
        if epoch > self._fencing.get(session, -1):
            self._fencing[session] = epoch
        self._dirty.set()

    def _append(self, queue: deque[T], item: T) -> None:
        if len(queue) == queue.maxlen:
            self.dropped += 1
        queue.append(item)
        self._dirty.set()

    def add_feeder(self, feed: Callable[[], None]) -> None:
        """Have `flush()` call `feed()` first: it hands over what it still holds."""
        self._feeders.append(feed)

    # -- the writer task ---------------------------------------------------------------

    async def run(self) -> None:
        """Flush forever; cancel it after a last `flush()`."""
        while True:
            await self._dirty.wait()
            # A periodic batch window, not a synchronisation: whatever arrives in it
            # shares one transaction.
            await asyncio.sleep(self._interval_s)
            await self.flush()

    async def flush(self) -> None:
        """Commit everything pending now; a store error is logged and counted."""
        for feed in self._feeders:
            feed()
        async with self._lock:
            batch = self._take()
            if not len(batch):
                return
            try:
                await self._store.write(batch)
            except StoreError as exc:
                self.errors += 1
                log.error("audit batch of %d lost: %s", len(batch), exc)
                return
            self.flushed += len(batch)

    def _take(self) -> AuditBatch:
        self._dirty.clear()
        batch = AuditBatch(
            decisions=list(self._decisions),
            actions=list(self._actions),
            quarantine=list(self._quarantine),
            rollups=self._rollups.take(),
            fencing=self._fencing,
        )
        self._decisions.clear()
        self._actions.clear()
        self._quarantine.clear()
        self._fencing = {}
        return batch

    @property
    def pending(self) -> int:
        return len(self._decisions) + len(self._actions) + len(self._quarantine)
