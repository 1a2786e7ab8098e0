"""The hot path: one raw reading in, decoded, stamped, evaluated, acted on, recorded.

    decode (shared.codec) ─ fail ─▶ quarantine: counted by reason, kept in memory for
      │                              the writer, and the next reading goes on
      ▼
    HLC stamp ─▶ reflex engine ─▶ actuator.fire ─▶ command published
                                        └─▶ Decision ─▶ audit writer + uplink.submit("dec")

Nothing here awaits the disk, the uplink or a model server; the only await is the
command publish into the broker client's buffer. A handler error is logged and counted,
and never stops the next reading.
"""

from __future__ import annotations

import asyncio
import logging
import time

from edge.actuate.actuator import Actuator
from edge.errors import DeviceMismatch
from edge.ingest.ports import UplinkSink
from edge.ops.metrics import EdgeMetrics
from edge.reflex.engine import ReflexEngine
from edge.reflex.trigger import Firing
from edge.store.records import QuarantineEntry
from edge.store.writer import AuditWriter
from shared import subjects
from shared.codec import decode, encode
from shared.errors import DecodeError
from shared.hlc import LOGICAL_BITS, HybridLogicalClock
from shared.messages import Decision, Reading, now_ms
from shared.trace import child_of

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self,
        *,
        gateway: str,
        engine: ReflexEngine,
        actuator: Actuator,
        writer: AuditWriter,
        metrics: EdgeMetrics,
        clock: HybridLogicalClock,
        uplink: UplinkSink | None = None,
        forward_readings: bool = False,
        max_payload_bytes: int,
    ) -> None:
        self.gateway = gateway
        self.engine = engine
        self._actuator = actuator
        self._writer = writer
        self._metrics = metrics
        self._clock = clock
        self._uplink = uplink
        self._forward = forward_readings and uplink is not None
        self._max_bytes = max_payload_bytes

    async def handle(self, topic: str, data: bytes, received_ns: int) -> None:
        """`Deliver` for a `ReadingSource`: never raises."""
        try:
            reading = self.decode(topic, data)
        except DecodeError as exc:
            self._quarantine(topic, data, exc)
            return
        try:
            await self._process(reading, received_ns)
        except Exception:
            self._metrics.errors["handler"] += 1
            log.exception("reading %s/%d not fully handled", reading.device, reading.seq)

    def decode(self, topic: str, data: bytes) -> Reading:
        reading = decode(data, Reading, max_bytes=self._max_bytes)
        sender = subjects.device_from_subject(topic)
        if reading.device != sender:
            # A device publishes only as itself (DESIGN guarantees): the topic is what
            # the broker authenticated, the payload is only what it claims.
            raise DeviceMismatch(f"payload says {reading.device!r}, topic {topic!r}")
        return reading

    async def _process(self, reading: Reading, received_ns: int) -> None:
        stamp = self._clock.now()
        self._metrics.readings["ok"] += 1
        firings = self.engine.evaluate(
            reading.device, reading.dclass, reading.metrics, reading.ts_ms, received_ns / 1e9
        )
        for firing in firings:
            await self._act(firing, reading, stamp, received_ns)
        self._writer.reading(reading.device, reading.metrics, stamp >> LOGICAL_BITS)
        if self._forward:
            self._forward_reading(reading, stamp)

    async def _act(self, firing: Firing, reading: Reading, stamp: int, received_ns: int) -> None:
        cmd = await self._actuator.fire(firing, traceparent=child_of(reading.traceparent))
        latency_us = (time.perf_counter_ns() - received_ns) // 1000
        self._metrics.latency.observe_us(latency_us)
        # Let the broker client write the command before we spend time on the audit
        # record: this yield is what keeps the bookkeeping off the reflex latency.
        await asyncio.sleep(0)
        decision = Decision.model_construct(
            gw=self.gateway,
            device=reading.device,
            source=firing.source,
            name=firing.name,
            version=firing.version,
            inputs=dict(firing.inputs),
            score=firing.score,
            threshold=firing.threshold,
            command=cmd,
            latency_us=latency_us,
            hlc=stamp,
            reading_seq=reading.seq,
            traceparent=cmd.traceparent,
        )
        self._metrics.decisions += 1
        self._writer.decision(decision)
        if self._uplink is not None:
            self._uplink.submit(
                "dec", reading.device, decision.decision_id, encode(decision),
                traceparent=decision.traceparent,
            )  # fmt: skip

    def _forward_reading(self, reading: Reading, stamp: int) -> None:
        assert self._uplink is not None
        stamped = reading.model_copy(update={"gw": self.gateway, "hlc": stamp})
        self._uplink.submit(
            "r", reading.device, reading.seq, encode(stamped), traceparent=reading.traceparent
        )

    def _quarantine(self, topic: str, data: bytes, exc: DecodeError) -> None:
        self._metrics.readings["quarantined"] += 1
        self._metrics.quarantined[exc.reason] += 1
        self._writer.quarantine(QuarantineEntry(topic, data, exc.reason, exc.detail, now_ms()))
        # The first of each reason is news to an operator; a flood of them is a counter.
        first = self._metrics.quarantined[exc.reason] == 1
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "quarantined a payload from %s: %s%s",
            topic,
            exc,
            " (first of its kind; see the quarantine table and counter)" if first else "",
            extra={"reason": exc.reason, "topic": topic},
        )
