"""Feeds this replica's read model (and its event stream) from the hub, for the whole fleet.

Two sources, each chosen for what it carries:

- Twins: a watch on the `twins` KV bucket. The KV is the source of truth that the
  shared ingest consumer writes (on whichever replica fetched the message), so watching
  it gives every replica every twin, already folded and de-duplicated, with no second
  copy of the fold logic and no coordination between replicas.
- Readings (history and rollups): an *ordered, ephemeral* consumer per replica over
  FLEET. The shared durable consumer cannot do this job: it gives each message to one
  replica only, and every replica must answer queries for the whole fleet. An ordered
  consumer needs no acks, resumes from the cursor stored with the data (same SQLite
  transaction), and is recreated by nats-py after a gap or a hub restart
  (`cloud.readmodel.ordered`); rows are keyed by (gw, device, seq) so a replay never
  counts twice.

Both publish what they apply to the `EventBus` behind `GET /api/events`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, Final

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from cloud.api.events import EventBus
from cloud.api.metrics import CloudMetrics
from cloud.errors import Rejected
from cloud.ingest.facts import Fact, parse
from cloud.readmodel.db import ReadingRow, ReadModel
from cloud.readmodel.ordered import subscribe_ordered
from cloud.twins.record import TwinRecord
from shared import hlc, streams, subjects
from shared.compat import timeout
from shared.errors import DecodeError
from shared.messages import Message, Reading, now_ms

log = logging.getLogger(__name__)

# Past this many buffered messages the subscription callback waits for the writer, so
# JetStream flow control slows the server down instead of this process growing.
MAX_BUFFERED: Final = 10_000
PRUNE_EVERY_S: Final = 60.0
_KV_DELETES = ("DEL", "PURGE")
_EVENT_TYPES = {"r": "reading", "twin": "report", "status": "status", "ack": "ack",
                "dec": "decision", "ev": "event"}  # fmt: skip


class Projector:
    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        readmodel: ReadModel,
        bus: EventBus,
        metrics: CloudMetrics,
        *,
        backfill_minutes: int,
    ) -> None:
        self._js = js
        self._kv = kv
        self._db = readmodel
        self._bus = bus
        self._metrics = metrics
        self._backfill_minutes = backfill_minutes
        self._buffer: list[Msg] = []
        self._pending = asyncio.Event()
        self._drained = asyncio.Event()
        self._changed = asyncio.Condition()
        self._last_prune = 0.0
        self.twins_loaded = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Wait until `predicate()` holds after some change to the read model."""
        async with timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- twins: KV watch ----------------------------------------------------------------

    async def run_twins(self) -> None:
        watcher = await self._kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # nats-py's marker: the initial values are all in
                    self.twins_loaded.set()
                elif entry.operation in _KV_DELETES:
                    gw, _, device = entry.key.partition(".")
                    self._db.delete_twin(gw, device)
                elif entry.value and entry.revision:
                    self._put_twin(entry.key, entry.value, entry.revision)
                await self._notify()
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    def _put_twin(self, key: str, value: bytes, revision: int) -> None:
        try:
            record = TwinRecord.decode(value)
        except DecodeError as exc:
            log.error("read model: twin %s revision %d unreadable: %s", key, revision, exc)
            return
        self._db.put_twin(record, revision)
        self._bus.publish("twin", twin_event(record))

    # -- readings: ordered consumer over FLEET ---------------------------------------------

    async def run_fleet(self) -> None:
        sub = await subscribe_ordered(
            self._js,
            subjects.FLEET_ALL,
            stream=subjects.FLEET_STREAM,
            config=self._start_config(),
            cb=self._on_msg,
        )
        try:
            while True:
                await self._pending.wait()
                await self._flush()
        finally:
            await sub.unsubscribe()
            await self._flush()

    def _start_config(self) -> ConsumerConfig:
        cursor = self._db.cursor()
        if cursor is not None:
            return ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=cursor + 1
            )
        if self._backfill_minutes == 0:
            return ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=self._backfill_minutes)
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)

    async def _on_msg(self, msg: Msg) -> None:
        while len(self._buffer) >= MAX_BUFFERED:
            self._drained.clear()
            await self._drained.wait()
        self._buffer.append(msg)
        self._pending.set()

    async def _flush(self) -> None:
        batch, self._buffer = self._buffer, []
        self._pending.clear()
        self._drained.set()
        if not batch:
            return
        rows: list[ReadingRow] = []
        for msg in batch:
            fact = self._fact(msg)
            if fact is not None:
                self._publish(fact)
                if isinstance(fact.body, Reading):
                    rows.append(reading_row(fact, fact.body))
        self._db.add_readings(rows, cursor=batch[-1].metadata.sequence.stream)
        self._metrics.projected.inc(len(batch))
        self._maybe_prune()
        await self._notify()

    def _fact(self, msg: Msg) -> Fact | None:
        try:
            return parse(msg.subject, msg.headers, msg.data, now_ms=now_ms())
        except Rejected:
            return None  # counted once, by the shared ingest consumer

    def _publish(self, fact: Fact) -> None:
        data: dict[str, Any] = {"gw": fact.gw, "device": fact.device, "hlc": fact.hlc}
        if isinstance(fact.body, Message):
            data["message"] = fact.body.model_dump(mode="json")
        else:
            data["online"] = fact.body
        self._bus.publish(_EVENT_TYPES[fact.kind], data)

    def _maybe_prune(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            self._db.prune()


def reading_row(fact: Fact, reading: Reading) -> ReadingRow:
    return ReadingRow(
        gw=fact.gw,
        device=fact.device,
        seq=reading.seq,
        hlc=fact.hlc,
        at_ms=measured_at(fact, reading),
        ts_ms=reading.ts_ms,
        metrics=dict(reading.metrics),
    )


def measured_at(fact: Fact, reading: Reading) -> int:
    """When a reading was taken, for its rollup minute.

    The gateway stamps its HLC when it forwards, so a backlog sent after an outage would
    pile into the minute it was sent. The device's own `ts_ms` is used instead when it
    is plausible: not after the stamp (beyond clock drift) and not older than a gateway
    keeps a backlog. A device with a wild clock falls back to the gateway's stamp.
    """
    stamp_ms = fact.hlc_ms
    if stamp_ms - streams.UPLINK_MAX_AGE_S * 1000 <= reading.ts_ms <= stamp_ms + hlc.MAX_DRIFT_MS:
        return reading.ts_ms
    return stamp_ms


def twin_event(record: TwinRecord) -> dict[str, Any]:
    return {
        "gw": record.gw,
        "device": record.device,
        "online": record.online,
        "desired_version": record.desired_version,
        "reported_version": record.reported_version,
        "converged": record.converged,
        "last_seen_ms": record.last_seen_ms,
        "readings": record.readings,
    }
