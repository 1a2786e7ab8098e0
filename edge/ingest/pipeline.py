"""The hot path: one raw reading in, decoded, stamped, evaluated, acted on, recorded.

    decode (shared.codec) ─ fail ─▶ quarantine: counted by reason, kept in memory for
      │                              the writer, and the next reading goes on
      ▼
    HLC stamp ─▶ rules ─▶ actuator.fire ─▶ command packed from its fields and published
                 │                  └─▶ (batched, SETTLE_AFTER_S later) Command, Decision
                 │                      ─▶ audit writer + uplink.submit("dec"); the rollup
                 └─▶ models (ONNX) ─▶ the same, once the rules' commands have left

Nothing here awaits the disk, the uplink or a model server; the only await is the
command publish into the broker client's buffer, whose flusher task writes it to the
socket on the next loop turn. Everything else about a fired reading (its `Command`
model, decision, action row, rollup) waits for `settle()`, which a timer runs
`SETTLE_AFTER_S` later for everything gathered by then: the device's round trip never
waits for the audit record, its encoding or the uplink, and the records of consecutive
commands are made together (the counters and the latency histogram are updated at
once). Under a burst, the commands of consecutive readings share one socket write, and
the loop is given a turn at least every `FLUSH_AFTER_NS` of processing. A handler error
is logged and counted, and never stops the next reading.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from edge.actuate.actuator import Actuator, ReflexCommand
from edge.errors import DeviceMismatch
from edge.ingest.ids import child_span, new_id
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

log = logging.getLogger(__name__)

# A burst of readings is processed back to back (the broker client hands over what it
# read without a loop turn in between); after this long with a command still in the
# client's buffer the loop gets a turn, so the flusher writes it. One turn costs
# ~10 µs, so a quiet device's command still leaves at once and a flood's commands
# share writes.
FLUSH_AFTER_NS = 200_000
# How long the records of a fired reading (its Command and Decision models, the action
# row, the decision's uplink submit, the rollup) wait, to be made in one batch with the
# next ones. Made one by one, each runs cold in the gap between two readings, competing
# with the broker for the CPU while the command is on its way to the device; batched,
# a device's back-to-back round trips cost the daemon ~10 % less CPU each and come back
# sooner (`baton bench --only reflex`). Small next to what comes after: the uplink
# submitter lingers 10 ms, the audit writer 200 ms.
SETTLE_AFTER_S = 0.005


@dataclass(frozen=True, slots=True)
class _Fired:
    """A command sent whose decision is not recorded yet."""

    firing: Firing
    reading: Reading
    sent: ReflexCommand
    stamp: int
    latency_us: int


@dataclass(frozen=True, slots=True)
class _Seen:
    """A reading whose rollup (and forwarding) waits behind commands not yet written."""

    reading: Reading
    stamp: int


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
        # What `settle` still has to do, in arrival order: a reading handled while this
        # is not empty queues behind it, so readings are forwarded in order.
        self._later: list[_Fired | _Seen] = []
        self._settling: asyncio.TimerHandle | None = None
        self._unflushed_ns = 0  # when the oldest command not yet written was published

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
        engine, now_s = self.engine, received_ns / 1e9
        device, dclass, metrics = reading.device, reading.dclass, reading.metrics
        for firing in engine.evaluate_rules(device, dclass, metrics, reading.ts_ms, now_s):
            await self._act(firing, reading, stamp, received_ns)
        if engine.models:
            if self._unflushed_ns:
                # A rule's command leaves before the models' inference (tens of µs each):
                # one loop turn, and the flusher has written it.
                await asyncio.sleep(0)
            for firing in engine.evaluate_models(device, dclass, metrics, now_s):
                await self._act(firing, reading, stamp, received_ns)
        if self._later:
            self._later.append(_Seen(reading, stamp))
        else:
            self._book(reading, stamp)
        if self._unflushed_ns and time.perf_counter_ns() - self._unflushed_ns > FLUSH_AFTER_NS:
            await asyncio.sleep(0)  # the flusher writes

    async def _act(self, firing: Firing, reading: Reading, stamp: int, received_ns: int) -> None:
        sent = await self._actuator.fire(firing, traceparent=child_span(reading.traceparent))
        now_ns = time.perf_counter_ns()
        latency_us = (now_ns - received_ns) // 1000
        # Counted now, recorded later: /metrics says at once what the reflex did.
        self._metrics.latency.observe_us(latency_us)
        self._metrics.decisions += 1
        loop = asyncio.get_running_loop()
        if not self._unflushed_ns:
            # Runs right after the flusher the publish woke, once the command is written.
            loop.call_soon(self._written)
            self._unflushed_ns = now_ns
        if self._settling is None:
            self._settling = loop.call_later(SETTLE_AFTER_S, self.settle)
        self._later.append(_Fired(firing, reading, sent, stamp, latency_us))

    def _written(self) -> None:
        self._unflushed_ns = 0

    def settle(self) -> None:
        """Record the decisions of the commands sent so far, and the rollups of the
        readings handled meanwhile; never raises.

        Runs by itself `SETTLE_AFTER_S` after the first of them; every flush of the
        audit writer calls it first (it is the writer's feeder) and so does the daemon's
        drain, so nothing sent goes unrecorded or unsubmitted."""
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        later, self._later = self._later, []
        for item in later:
            try:
                if isinstance(item, _Fired):
                    self._record(item)
                else:
                    self._book(item.reading, item.stamp)
            except Exception:
                self._metrics.errors["handler"] += 1
                log.exception(
                    "reading %s/%d not fully recorded", item.reading.device, item.reading.seq
                )

    def _book(self, reading: Reading, stamp: int) -> None:
        """The reading's rollup, and its uplink copy where the leaf stream has none."""
        self._writer.reading(reading.device, reading.metrics, stamp >> LOGICAL_BITS)
        if self._forward:
            self._forward_reading(reading, stamp)

    def _record(self, item: _Fired) -> None:
        firing, reading = item.firing, item.reading
        cmd = self._actuator.record(item.sent)
        # model_construct with every defaulted field given: a default factory would cost
        # pydantic an `inspect.signature` call per decision.
        decision = Decision.model_construct(
            decision_id=new_id(),
            gw=self.gateway,
            device=reading.device,
            source=firing.source,
            name=firing.name,
            version=firing.version,
            inputs=dict(firing.inputs),
            score=firing.score,
            threshold=firing.threshold,
            command=cmd,
            latency_us=item.latency_us,
            ts_ms=cmd.issued_ms,  # when it was decided, not when recorded
            hlc=item.stamp,
            reading_seq=reading.seq,
            traceparent=cmd.traceparent,
        )
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
