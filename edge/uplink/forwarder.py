"""The forwarder: the leaf UPLINK work queue → the hub FLEET stream, in order.

One round::

    take ≤ batch             durable pull consumer, leaf domain edge-<gw> (puller.py)
    route each               hub subject + Nats-Msg-Id (routing.py); a payload that
                             does not decode is acked here and counted dropped_invalid
    publish pipelined        to the hub domain, across the leaf node link
    settle the PubAcks       ack locally, in order, the leading run the hub stored
    the rest                 kept in memory, in order; back off; send again

A message leaves the leaf only after the hub's PubAck (the local ack is what deletes it
from a work-queue stream), so the hub gets everything at least once; the hub's
Nats-Msg-Id dedupe (ADR-31) turns the re-sends into exactly once.

Order. Per-device order at the hub is stream order at the leaf, kept because nothing is
ever sent ahead of an unstored message except inside one pipelined batch. After any
failure the next attempt sends its first message alone and pipelines the rest only once
the hub has stored it: a batch can then only straddle an outage that starts *and* ends
inside its few milliseconds of flight. If that happens anyway it is logged.

Restart. On start, and whenever deliveries or acks may have been lost (the connection
to the leaf was re-established, the leaf's JetStream went away, a stored message was
skipped), the consumer is deleted and created again from the first message the stream
holds. In a work queue that is exactly the unforwarded backlog, so whatever was fetched
and not acked comes first, now, instead of after AckWait and behind newer messages
(ADR-60's consumer reset does the same from nats-server 2.14). Only one forwarder may
run per gateway: a second one would re-create the first one's consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from edge.uplink import routing
from edge.uplink.backoff import Backoff
from edge.uplink.config import UplinkConfig
from edge.uplink.pipeline import Outgoing, Publisher
from edge.uplink.puller import Puller
from edge.uplink.stats import UplinkCounters
from shared import subjects
from shared.errors import DecodeError
from shared.hlc import HybridLogicalClock

log = logging.getLogger(__name__)

DURABLE = "forwarder"
# How long one wait for a delivery lasts before the loop looks around again; a reading
# is forwarded as soon as it is delivered, whatever this is.
TAKE_WAIT_S = 1.0
# Held and prefetched messages get +WPI (in progress) well before AckWait runs out,
# so an outage of any length does not turn into redeliveries behind newer messages.
ACK_WAIT_S = 60.0
PROGRESS_EVERY_S = ACK_WAIT_S / 3

Held = list[tuple[Msg, Outgoing]]


class LostDelivery(NatsError):
    """Messages the leaf still stores were skipped by the deliveries we got."""


class Forwarder:
    """Moves the leaf's UPLINK backlog to the hub until cancelled."""

    def __init__(
        self,
        nc: Client,
        gateway: str,
        cfg: UplinkConfig,
        counters: UplinkCounters,
        clock: HybridLogicalClock,
        publisher: Publisher,
    ) -> None:
        self._gateway = gateway
        self._cfg = cfg
        self._counters = counters
        self._clock = clock
        self._nc = nc
        self._leaf = nc.jetstream(domain=subjects.gateway_domain(gateway))
        # Publishes to `fleet.>` need no domain: no stream on the leaf takes them, so
        # they cross the leaf node link to the hub's FLEET stream, PubAck and all.
        self._publisher = publisher
        self._backoff = Backoff(cfg.retry_backoff_max_s)
        self._careful = True  # the hub's state is unknown: first send probes it
        self._last_seq = 0  # the last stream sequence routed
        self._acked_through = 0  # everything up to it is at the hub and acked here
        self._held_since = 0.0
        self._stalled = False
        self.last_stored = float("-inf")
        """Loop time of the last batch the hub stored entirely."""

    async def run(self) -> None:
        """Forward until cancelled; a leaf error rebinds the consumer after a backoff."""
        while True:
            try:
                puller = await self._bind()
            except (NatsError, asyncio.TimeoutError) as exc:
                await self._leaf_error("binding the forwarder consumer", exc)
                continue
            try:
                await self._pump(puller)
            except (NatsError, asyncio.TimeoutError) as exc:
                await self._leaf_error("forwarding", exc)
            finally:
                with contextlib.suppress(NatsError):
                    await puller.stop()

    async def _bind(self) -> Puller:
        with contextlib.suppress(NotFoundError):
            await self._leaf.delete_consumer(subjects.UPLINK_STREAM, DURABLE)
        config = ConsumerConfig(
            durable_name=DURABLE,
            description=f"forwards gateway {self._gateway}'s backlog to the hub",
            ack_policy=AckPolicy.EXPLICIT,  # required by a work-queue stream
            ack_wait=ACK_WAIT_S,
            deliver_policy=DeliverPolicy.ALL,
            # One batch at the hub, two on their way here: what the puller asks for.
            max_ack_pending=3 * self._cfg.batch,
        )
        await self._leaf.add_consumer(subjects.UPLINK_STREAM, config=config)
        self._last_seq = self._acked_through = 0
        api = f"$JS.{subjects.gateway_domain(self._gateway)}.API"
        puller = Puller(self._nc, api, subjects.UPLINK_STREAM, DURABLE, self._cfg.batch)
        await puller.start()
        return puller

    async def _pump(self, puller: Puller) -> None:
        while True:
            held = await self._route(await puller.take(self._cfg.batch, TAKE_WAIT_S))
            while held:
                held = await self._forward(held, puller)

    async def _route(self, msgs: list[Msg]) -> Held:
        """Route a fetched batch; ack and count what must not reach the hub."""
        held: Held = []
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            if seq <= self._last_seq:
                await self._redelivered(msg, seq)
                continue
            await self._check_gap(seq)
            try:
                out = routing.route(
                    msg.subject,
                    msg.data,
                    msg.headers,
                    stream_seq=seq,
                    gateway=self._gateway,
                    hlc=self._clock.now(),
                )
            except DecodeError as exc:
                self._counters.dropped_invalid += 1
                log.debug("not forwarded: %s", exc, extra={"subject": msg.subject, "seq": seq})
                await msg.ack()
                continue
            held.append((msg, out))
        return held

    async def _redelivered(self, msg: Msg, seq: int) -> None:
        # A second copy of a message we have (AckWait ran out while it was held, or its
        # ack was lost). Every sequence up to `_last_seq` was seen or is gone from the
        # stream (_check_gap), so up to `_acked_through` it is at the hub already.
        if seq <= self._acked_through:
            await msg.ack()
        # Else the held copy is acked when the hub has it.

    async def _check_gap(self, seq: int) -> None:
        """Count a jump in the stream sequence as discarded messages, if they are gone.

        One consumer sees every stored message in stream order, so a jump is either the
        leaf discarding unforwarded messages (limits, drop_oldest) or deliveries lost
        with a connection. The stream tells which; for a loss, `LostDelivery` makes
        `run()` re-create the consumer, which redelivers them, in order, first.
        """
        first, last = self._last_seq + 1, seq - 1
        if not self._last_seq or first > last:
            self._last_seq = seq
            return
        for probe in (first, last):
            with contextlib.suppress(NotFoundError):
                await self._leaf.get_msg(subjects.UPLINK_STREAM, probe)
                raise LostDelivery(f"stream sequence {probe} was never delivered")
        lost = last - first + 1
        self._counters.dropped_full += lost
        log.warning("leaf store dropped %d unforwarded message(s) (full or expired)", lost)
        self._last_seq = seq

    @property
    def stalled(self) -> bool:
        """Holding messages the hub did not take on the last attempt."""
        return self._stalled

    async def _forward(self, held: Held, puller: Puller) -> Held:
        """One attempt: ack what the hub stored, return the rest (after a backoff)."""
        stored = await self._send(held)
        for msg, _ in held[:stored]:
            await msg.ack()
        if stored:
            self._acked_through = held[stored - 1][0].metadata.sequence.stream
        self._counters.forwarded += stored
        rest = held[stored:]
        if rest:
            await self._stall([msg for msg, _ in rest] + puller.buffered)
        else:
            self._backoff.reset()
        return rest

    async def _send(self, held: Held) -> int:
        """How many of `held`, from the start, the hub has stored."""
        timeout_s = self._cfg.hub_ack_timeout_s
        first = 0
        if self._careful:
            probe = held[0][1]
            err = (await self._publisher.publish_all([probe], timeout_s))[0]
            if err is not None:
                self._hub_failed(err, probe)
                return 0
            self._careful, first = False, 1
        outcomes = await self._publisher.publish_all([out for _, out in held[first:]], timeout_s)
        stored = next((i for i, err in enumerate(outcomes) if err is not None), len(outcomes))
        if stored < len(outcomes):
            self._hub_failed(outcomes[stored], held[first + stored][1])
            if any(err is None for err in outcomes[stored:]):
                log.warning("the hub stored messages after a failed one; order may differ")
        else:
            self._stalled = False
            self._counters.hub_connected = True
            self.last_stored = asyncio.get_running_loop().time()
        return first + stored

    def _hub_failed(self, err: BaseException | None, out: Outgoing) -> None:
        self._careful = self._stalled = True
        self._counters.errors += 1
        # Once per outage at warning level; the retries of the same outage at debug.
        level = logging.WARNING if self._backoff.failures == 0 else logging.DEBUG
        log.log(
            level,
            "hub publish failed, holding the backlog: %r",
            err,
            extra={"msg_id": out.headers[routing.MSG_ID]},
        )
        self._counters.hub_connected = False

    async def _stall(self, unacked: list[Msg]) -> None:
        now = asyncio.get_running_loop().time()
        if self._backoff.failures == 0:
            self._held_since = now
        elif now - self._held_since > PROGRESS_EVERY_S:
            self._held_since = now
            for msg in unacked:  # +WPI: restart their AckWait (ADR-15)
                await msg.in_progress()
        await self._backoff.wait()

    async def _leaf_error(self, what: str, exc: BaseException) -> None:
        self._counters.errors += 1
        log.warning("uplink: leaf error while %s: %r; retrying", what, exc)
        self._careful = True
        await self._backoff.wait()
