"""The reconcile loop: find twins whose state and reality differ, and act.

Every `reconcile_interval_s` (or at once when ingest sees a device come back):

- silent: a device marked online but not heard from for `silent_after_s` is marked
  offline (the edge's last-will `offline` status does this sooner when it can);
- drift: an online device whose reported version is behind the desired one gets its
  desired state again, after `resend_after_s`, doubling per attempt (capped);
- back from an outage with a backlog: ingest clears the backoff when a drifting device
  comes back online, so the next pass sends at once.

Each replica scans its own read model (cheap, local) but acts by compare-and-set on the
KV twin, re-checking there; when two replicas see the same drift, one wins the write
and only the winner publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cloud.api.metrics import CloudMetrics
from cloud.errors import Conflict
from cloud.readmodel.db import ReadModel
from cloud.twins.desired import DesiredService
from cloud.twins.fold import FoldContext, is_online
from cloud.twins.record import TwinRecord
from cloud.twins.store import TwinStore
from shared.errors import TransportError
from shared.messages import now_ms

log = logging.getLogger(__name__)

# Re-sending desired state to an edge that is up but does not apply it: back off so a
# broken device costs a message every few minutes, not every tick.
MAX_RESEND_BACKOFF_MS: Final = 10 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Pass:
    """What one reconcile pass did."""

    marked_offline: int = 0
    resent: int = 0


class Reconciler:
    def __init__(
        self,
        readmodel: ReadModel,
        store: TwinStore,
        desired: DesiredService,
        metrics: CloudMetrics,
        *,
        interval_s: float,
        silent_after_s: float,
        resend_after_s: float,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._db = readmodel
        self._store = store
        self._desired = desired
        self._metrics = metrics
        self._interval_s = interval_s
        self._silent_after_ms = int(silent_after_s * 1000)
        self._resend_after_ms = int(resend_after_s * 1000)
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self, _record: TwinRecord | None = None) -> None:
        """Run a pass now (e.g. a device came back online with drift)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:
                # One bad pass must not end the loop: log it and try again next tick.
                log.exception("reconcile pass failed")
                self._metrics.loop_errors.labels("reconcile").inc()

    async def reconcile(self) -> Pass:
        """One pass over this replica's read model."""
        now = self._clock()
        ctx = FoldContext(now_ms=now, silent_after_ms=self._silent_after_ms)
        marked = resent = 0
        for record in self._db.silent(now - self._silent_after_ms):
            marked += await self._silence(record.key, ctx)
        for record in self._db.drifting():
            if self._due(record, now):
                resent += await self._resend(record.key, now)
        self._gauge()
        return Pass(marked, resent)

    async def _silence(self, key: str, ctx: FoldContext) -> int:
        def change(record: TwinRecord | None) -> tuple[TwinRecord | None, bool]:
            # Re-checked on the KV copy: a reading may have arrived since the scan.
            if record is None or not record.online or is_online(record, record.last_seen_ms, ctx):
                return None, False
            return record.model_copy(update={"online": False, "updated_ms": ctx.now_ms}), True

        try:
            marked = await self._store.update(key, change)
        except (TransportError, Conflict) as exc:
            log.warning("reconcile: %s not marked offline: %s", key, exc)
            return 0
        if marked:
            log.info("reconcile: %s silent for %d ms, marked offline", key, ctx.silent_after_ms)
            self._metrics.marked_offline.inc()
        return int(marked)

    async def _resend(self, key: str, now: int) -> int:
        Sent = tuple[TwinRecord, str] | None

        def change(record: TwinRecord | None) -> tuple[TwinRecord | None, Sent]:
            if record is None or not (record.drift and record.online and self._due(record, now)):
                return None, None
            # sent_ms == 0: ingest cleared the backoff when the device came back online.
            cause = "reconnect" if record.sent_ms == 0 else "resend"
            new = record.model_copy(update={"sent_ms": now, "sends": record.sends + 1})
            return new, (new, cause)

        try:
            sent = await self._store.update(key, change)
            if sent is None:
                return 0
            await self._desired.send(*sent)
        except (TransportError, Conflict) as exc:
            log.warning("reconcile: desired state of %s not re-sent: %s", key, exc)
            return 0
        return 1

    def _due(self, record: TwinRecord, now: int) -> bool:
        backoff = self._resend_after_ms << min(max(record.sends - 1, 0), 16)
        return now - record.sent_ms >= min(backoff, MAX_RESEND_BACKOFF_MS)

    def _gauge(self) -> None:
        for state, count in self._db.counts().items():
            self._metrics.devices.labels(state).set(count)
