"""The forwarder: the leaf UPLINK work queue → the hub FLEET stream, in order.

The rounds are pipelined::

    take ≤ batch             durable pull consumer, leaf domain edge-<gw> (puller.py);
                             the next batches are already on their way here
    route each               hub subject + Nats-Msg-Id (routing.py); a payload that
                             does not decode is acked here and counted dropped_invalid
    publish                  to the hub domain, across the leaf node link, without
                             waiting: up to WINDOW batches are in flight at once
    settle the oldest        its PubAcks (in order): ack locally the leading run the
                             hub stored
    on a failure             the rest of that batch and every later one in flight are
                             kept in memory, in order; back off; send them again

A message leaves the leaf only after the hub's PubAck (the local ack is what deletes it
from a work-queue stream), so the hub gets everything at least once; the hub's
Nats-Msg-Id dedupe (ADR-31) turns the re-sends into exactly once. A message is acked
locally only once it and every message before it are stored at the hub: batches settle
oldest first, and a batch is acked only up to its first failure.

Order. Per-device order at the hub is stream order at the leaf, kept because nothing is
ever sent ahead of an unstored message except inside the pipeline. After any failure
the batches still in flight are settled (not acked past the failure) and the next
attempt sends its first message alone, pipelining again only once the hub has stored
it: the pipeline can then only straddle an outage that starts *and* ends inside its few
milliseconds of flight. If that happens anyway it is logged.

Restart. On start, and whenever deliveries or acks may have been lost (the connection
to the leaf was re-established, the leaf's JetStream went away, a stored message was
skipped), the consumer is deleted and created again from the first message the stream
holds. In a work queue that is exactly the unforwarded backlog, so whatever was fetched
and not acked comes first, now, instead of after AckWait and behind newer messages
(ADR-60's consumer reset does the same from nats-server 2.14). Only one forwarder may
run per gateway: a second one would re-create the first one's consumer.

Local acks. A work-queue stream takes only explicit acks, one per message, and each
is a delete (and an fsync) on the leaf; so the forwarder acks by purging the stream up
to the last message the hub stored (acks.py), one purge for a whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from edge.uplink import routing
from edge.uplink.acks import Connect, LocalAcks
from edge.uplink.backoff import Backoff
from edge.uplink.config import UplinkConfig
from edge.uplink.pipeline import Flight, Outgoing, Publisher
from edge.uplink.puller import Puller, StalePull
from edge.uplink.stats import UplinkCounters
from shared import subjects
from shared.errors import DecodeError
from shared.hlc import HybridLogicalClock

log = logging.getLogger(__name__)

DURABLE = "forwarder"
# How long one wait for a delivery lasts before the loop looks around again.
TAKE_WAIT_S = 1.0
# With nothing in flight, a delivery waits this long for others to share its batch: a
# trickle of readings (one device, a few per second each) then costs the gateway one
# publish round, PubAck settlement and purge per LINGER_S instead of per reading, and
# the reflex loop fewer interruptions. A backlog fills its batch at once and never waits.
LINGER_S = 0.02
# Held and prefetched messages get +WPI (in progress) well before AckWait runs out,
# so an outage of any length does not turn into redeliveries behind newer messages.
ACK_WAIT_S = 60.0
PROGRESS_EVERY_S = ACK_WAIT_S / 3
# Batches published and not yet settled. Two keep the link busy while the oldest one's
# PubAcks come back; more only adds messages to re-send after a failure.
WINDOW = 3

Held = list[tuple[Msg, Outgoing]]
# Token counts of a JetStream ack subject: v1, and v2 (its trailing token optional).
_V1_TOKENS, _V2_TOKENS = 9, 11


class LostDelivery(NatsError):
    """Messages the leaf still stores were skipped by the deliveries we got."""


def stream_seq(msg: Msg) -> int:
    """The stream sequence of a JetStream delivery, read from its reply subject (ADR-15's
    v1 `$JS.ACK.<stream>.<consumer>.<n>.<sseq>...` or v2 with domain and account hash);
    `msg.metadata` builds five objects and a datetime per message to tell it."""
    return position(msg)[0]


def stored_ns(msg: Msg) -> int | None:
    """When the leaf stored a JetStream delivery (ns since the epoch), from the same reply
    subject as `stream_seq`; None when the reply does not carry it."""
    read = _from_reply(msg)
    return None if read is None else read[1]


def position(msg: Msg) -> tuple[int, int | None]:
    """`stream_seq` and `stored_ns` of a delivery, from one read of its reply subject."""
    read = _from_reply(msg)
    if read is None:
        return msg.metadata.sequence.stream, None  # raises NotJSMessageError
    return read


def _from_reply(msg: Msg) -> tuple[int, int] | None:
    tokens = (msg.reply or "").split(".")
    if len(tokens) == _V1_TOKENS:
        return int(tokens[5]), int(tokens[7])
    if len(tokens) >= _V2_TOKENS and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[7]), int(tokens[9])
    return None


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
        purge_connect: Connect,
    ) -> None:
        self._gateway = gateway
        self._cfg = cfg
        self._counters = counters
        self._clock = clock
        self._nc = nc
        self._leaf = nc.jetstream(domain=subjects.gateway_domain(gateway))
        self._api = f"$JS.{subjects.gateway_domain(gateway)}.API"
        self._acks = LocalAcks(purge_connect, self._api, subjects.UPLINK_STREAM, counters)
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

    async def aclose(self) -> None:
        """After `run()` was cancelled: send the last local ack (the purge) on its way."""
        await self._acks.aclose()

    async def run(self) -> None:
        """Forward until cancelled; a leaf error rebinds the consumer after a backoff."""
        while True:
            try:
                puller = await self._bind()
            except (NatsError, OSError, asyncio.TimeoutError) as exc:
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
        await self._acks.open()  # before the consumer: see acks.py on sequences
        with contextlib.suppress(NotFoundError):
            await self._leaf.delete_consumer(subjects.UPLINK_STREAM, DURABLE)
        config = ConsumerConfig(
            durable_name=DURABLE,
            description=f"forwards gateway {self._gateway}'s backlog to the hub",
            ack_policy=AckPolicy.EXPLICIT,  # required by a work-queue stream
            ack_wait=ACK_WAIT_S,
            deliver_policy=DeliverPolicy.ALL,
            # The batches in flight to the hub, and two on their way here (what the
            # puller asks for ahead).
            max_ack_pending=(WINDOW + 2) * self._cfg.batch,
        )
        await self._leaf.add_consumer(subjects.UPLINK_STREAM, config=config)
        self._last_seq = self._acked_through = 0
        puller = Puller(self._nc, self._api, subjects.UPLINK_STREAM, DURABLE, self._cfg.batch)
        await puller.start()
        return puller

    async def _pump(self, puller: Puller) -> None:
        flights: deque[tuple[Held, Flight]] = deque()
        try:
            while True:
                if self._acks.broken:
                    raise StalePull("the connection for local acks was lost")
                if len(flights) < WINDOW and (not flights or puller.ready):
                    if flights:
                        msgs = await puller.take(self._cfg.batch, 0.0)
                    else:
                        msgs = await puller.take(self._cfg.batch, TAKE_WAIT_S, LINGER_S)
                    held = await self._route(msgs)
                    if held and self._careful:
                        await self._retry(held, puller)  # nothing is in flight here
                    elif held:
                        flights.append((held, await self._launch(held)))
                    if not held and not flights:
                        await self._acks.retry()  # idle: a purge lost on the way?
                    if held or not flights:
                        continue
                await puller.refill()  # the next batches travel while this one settles
                held, flight = flights.popleft()
                rest = await self._land(held, flight)
                if rest:
                    rest += await self._ground(flights)
                    await self._stall([msg for msg, _ in rest] + puller.buffered)
                    await self._retry(rest, puller)
        finally:
            for _, flight in flights:
                self._publisher.forget(flight)

    async def _launch(self, held: Held) -> Flight:
        timeout_s = self._cfg.hub_ack_timeout_s
        return await self._publisher.send([out for _, out in held], timeout_s)

    async def _land(self, held: Held, flight: Flight) -> Held:
        """Settle a flight: ack the leading run the hub stored; the rest, to send again."""
        outcomes = await self._publisher.settle(flight)
        stored = next((i for i, err in enumerate(outcomes) if err is not None), len(outcomes))
        if stored < len(outcomes):
            self._hub_failed(outcomes[stored], held[stored][1])
            if any(err is None for err in outcomes[stored:]):
                log.warning("the hub stored messages after a failed one; order may differ")
        else:
            self._hub_ok()
        await self._ack(held[:stored])
        return held[stored:]

    async def _ground(self, flights: deque[tuple[Held, Flight]]) -> Held:
        """After a failure: settle every later flight without acking any of it (the hub
        has not stored what comes before), and return their messages, in order."""
        rest: Held = []
        while flights:
            held, flight = flights.popleft()
            outcomes = await self._publisher.settle(flight)
            if any(err is None for err in outcomes):
                log.warning("the hub stored messages after a failed one; order may differ")
            rest += held
        return rest

    async def _retry(self, held: Held, puller: Puller) -> None:
        """Send `held` again, the first message alone, until the hub stored all of it."""
        while held:
            held = await self._forward(held, puller)

    async def _ack(self, stored: Held) -> None:
        """`stored` (and all before it) are at the hub: delete them from the leaf."""
        if not stored:
            return
        self._acked_through = stream_seq(stored[-1][0])
        self._counters.forwarded += len(stored)
        await self._acks.through(self._acked_through)

    async def _route(self, msgs: list[Msg]) -> Held:
        """Route a fetched batch; ack and count what must not reach the hub."""
        held: Held = []
        for msg in msgs:
            seq, stored = position(msg)
            if seq <= self._last_seq:
                await self._redelivered(msg, seq)
                continue
            if seq == self._last_seq + 1:
                self._last_seq = seq
            else:
                await self._check_gap(seq)
            # The time the leaf stored it, not now: a re-send after the hub's duplicate
            # window must carry the stamp the first copy had (routing.stored_hlc).
            try:
                out = routing.route(
                    msg.subject,
                    msg.data,
                    msg.headers,
                    stream_seq=seq,
                    gateway=self._gateway,
                    hlc=self._clock.now() if stored is None else routing.stored_hlc(stored),
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
        # purge failed). Every sequence up to `_last_seq` was seen or is gone from the
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
        await self._ack(held[:stored])
        rest = held[stored:]
        if rest:
            await self._stall([msg for msg, _ in rest] + puller.buffered)
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
            self._hub_ok()
        return first + stored

    def _hub_ok(self) -> None:
        self._backoff.reset()
        self._stalled = False
        self._counters.hub_connected = True
        self.last_stored = asyncio.get_running_loop().time()

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
