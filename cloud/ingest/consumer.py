"""The shared ingest consumer: every replica pulls from one durable consumer on FLEET.

    FLEET (fleet.<gw>.<kind>.<dev>) ── durable pull consumer `cloud-ingest` ──┬─ replica A workers
                                                                               └─ replica B workers

JetStream hands each message to one fetcher at a time, so N replicas split the stream
without double-processing; a replica that dies with messages in hand loses nothing,
because they are redelivered after `ack_wait` to whoever fetches next.

Effects are twin writes (`twins` KV, compare-and-set): a fetched batch is grouped by
device, each group folded into its twin with one CAS, and its messages acked only after
that write is stored. A crash between write and ack means a redelivery, which the fold
recognises as a duplicate (`SeqWindow`, HLC), so the effect stays exactly-once. A failed
write naks its group, to be redelivered while other batches of the same device are
applied; the twin keeps the gaps that leaves open until the consumer's ack floor shows
nothing can still fill them (`SeqWindow.settle`), so the redelivered readings still
count. Bad payloads are terminated (`term`, never redelivered) and counted by reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cloud.api.metrics import CloudMetrics
from cloud.config import IngestConfig
from cloud.errors import Conflict, Rejected
from cloud.ingest import pull
from cloud.ingest.facts import TWIN_KINDS, Fact, parse
from cloud.twins.fold import FoldContext, Outcome, fold
from cloud.twins.record import TwinRecord
from cloud.twins.store import TwinStore
from shared import subjects
from shared.errors import TransportError
from shared.messages import now_ms

log = logging.getLogger(__name__)

# An idle fetch lingers this long. It also bounds how long a drain waits for an idle
# worker: cancelling a pull in flight instead could strand messages the hub already sent
# (redelivered only after ack_wait), so the drain lets it expire.
FETCH_TIMEOUT_S: Final = 0.5
RETRY_DELAY_S: Final = 1.0  # nak delay after a hub error: let the hub recover first
# How stale the ack floor may be. A stale floor is a low one, which only keeps reading
# gaps open longer (`SeqWindow.settle`); asking more often costs a JetStream API call.
ACK_FLOOR_EVERY_S: Final = 2.0


@dataclass
class _Group:
    facts: list[Fact] = field(default_factory=list)
    msgs: list[Msg] = field(default_factory=list)


class IngestConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        store: TwinStore,
        metrics: CloudMetrics,
        config: IngestConfig,
        *,
        silent_after_s: float,
        on_came_online: Callable[[TwinRecord], None] = lambda record: None,
    ) -> None:
        self._js = js
        self._store = store
        self._metrics = metrics
        self._config = config
        self._silent_after_ms = int(silent_after_s * 1000)
        self._on_came_online = on_came_online
        self._stopping = asyncio.Event()
        self._settled = 0  # the consumer's ack floor, as last read
        self._settled_at: float | None = None

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self._config.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._config.ack_wait_s,
            max_ack_pending=self._config.max_ack_pending,
            max_deliver=-1,
            filter_subject=subjects.FLEET_ALL,
        )

    def stop(self) -> None:
        """Stop fetching; the batch in hand is still finished and acked."""
        self._stopping.set()

    async def run(self, worker: int) -> None:
        """One fetch loop, bound to the shared durable; returns after `stop()`."""
        psub = await self._js.pull_subscribe(
            subjects.FLEET_ALL,
            durable=self._config.durable,
            stream=subjects.FLEET_STREAM,
            config=self.consumer_config(),
        )
        try:
            while not self._stopping.is_set():
                msgs = await self._fetch(psub, worker)
                if msgs:
                    await self._read_ack_floor(psub)
                    await self.handle(msgs)
        finally:
            await _quietly(psub.unsubscribe())

    async def _fetch(self, psub: JetStreamContext.PullSubscription, worker: int) -> list[Msg]:
        try:
            return await pull.fetch(psub, self._config.batch, FETCH_TIMEOUT_S)
        except TransportError as exc:
            # Disconnected or the hub is restarting: nats-py reconnects by itself; wait
            # (on the stop signal, so a drain is not delayed) and fetch again.
            log.warning("ingest worker %d: %s", worker, exc)
            self._metrics.loop_errors.labels("ingest").inc()
            await _wait(self._stopping, RETRY_DELAY_S)
            return []

    async def _read_ack_floor(self, psub: JetStreamContext.PullSubscription) -> None:
        now = asyncio.get_running_loop().time()
        if self._settled_at is not None and now - self._settled_at < ACK_FLOOR_EVERY_S:
            return
        self._settled_at = now  # one worker asks; the others use what it got
        try:
            self._settled = await pull.ack_floor(psub)
        except TransportError as exc:
            log.debug("ingest: ack floor not read, keeping %d: %s", self._settled, exc)

    async def handle(self, msgs: list[Msg]) -> None:
        """Apply one fetched batch: reject, fold per twin, ack after each effect."""
        groups: dict[str, _Group] = {}
        received = now_ms()
        for msg in msgs:
            fact = await self._accept(msg, received)
            if fact is None:
                continue
            if fact.kind in TWIN_KINDS:
                group = groups.setdefault(fact.key, _Group())
                group.facts.append(fact)
                group.msgs.append(msg)
            else:
                # Acks, decisions and gateway events change no twin; the read models
                # and the planner read them from FLEET themselves.
                self._metrics.ingested.labels(fact.kind, "event").inc()
                await _ack(msg)
        for key, group in groups.items():
            await self._apply(key, group)

    async def _accept(self, msg: Msg, received_ms: int) -> Fact | None:
        try:
            return parse(
                msg.subject, msg.headers, msg.data, now_ms=received_ms, stream_seq=_stream_seq(msg)
            )
        except Rejected as exc:
            log.warning("ingest: rejected %s: %s", msg.subject, exc)
            self._metrics.rejected.labels(exc.reason).inc()
            await _quietly(msg.term())
            return None

    async def _apply(self, key: str, group: _Group) -> None:
        ctx = FoldContext(
            now_ms=now_ms(), silent_after_ms=self._silent_after_ms, settled_seq=self._settled
        )

        def change(record: TwinRecord | None) -> tuple[TwinRecord | None, Outcome]:
            outcome = fold(record, group.facts, ctx)
            return (outcome.record if outcome.changed else None), outcome

        try:
            outcome = await self._store.update(key, change)
        except (TransportError, Conflict) as exc:
            log.warning(
                "ingest: twin %s not updated, %d messages retried: %s", key, len(group.msgs), exc
            )
            self._metrics.loop_errors.labels("ingest").inc()
            for msg in group.msgs:
                await _quietly(msg.nak(delay=RETRY_DELAY_S))
            return
        self._effects(key, outcome)
        for msg in group.msgs:
            await _ack(msg)

    def _effects(self, key: str, outcome: Outcome) -> None:
        for fact in outcome.applied:
            self._metrics.ingested.labels(fact.kind, "applied").inc()
        for fact in outcome.duplicates:
            self._metrics.ingested.labels(fact.kind, "duplicate").inc()
        if outcome.convergence_ms is not None:
            self._metrics.convergence.observe(outcome.convergence_ms / 1000)
        if outcome.came_online:
            self._on_came_online(outcome.record)
        if outcome.gaps_forced:
            # The ack floor has not moved for a long time (a message that never settles):
            # readings still on their way into these gaps will be taken for duplicates.
            log.error(
                "ingest: twin %s gave up %d reading gaps before they settled (ack floor %d)",
                key, outcome.gaps_forced, self._settled,
            )  # fmt: skip
            self._metrics.loop_errors.labels("ingest-window").inc(outcome.gaps_forced)


def _stream_seq(msg: Msg) -> int:
    try:
        return msg.metadata.sequence.stream
    except nats.errors.NotJSMessageError:
        return 0  # not from a JetStream consumer: nothing to settle a gap by


async def _ack(msg: Msg) -> None:
    # A lost ack only means a redelivery, which the fold turns into a no-op.
    await _quietly(msg.ack())


async def _quietly(action: Awaitable[object]) -> None:
    try:
        await action
    except (nats.errors.Error, OSError) as exc:
        log.debug("ingest: %r", exc)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
