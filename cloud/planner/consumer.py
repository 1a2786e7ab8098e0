"""A shared durable pull consumer on the hub FLEET stream: N replicas split its messages.

Each message is handled, then acked. A payload that cannot be decoded is terminated (a
retry would fail the same way) and counted; a handler failure is logged, counted and
nak'ed with a delay, so a hub hiccup is retried and the next message still runs. A quiet
fetch is an empty one and a hub error is waited out (`cloud.ingest.pull`): neither ends
the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError

from cloud.ingest import pull
from shared import subjects
from shared.errors import DecodeError, TransportError

log = logging.getLogger(__name__)

# One fetch waits this long for messages before asking again (a long poll, not a sleep).
FETCH_WAIT_S = 5.0
FETCH_BATCH = 16
# Back-off before a message whose handler failed is redelivered.
NAK_DELAY_S = 1.0
# Pause after a failed fetch (hub away or restarting) while nats-py reconnects.
RETRY_DELAY_S = 1.0

Handler = Callable[[Msg], Awaitable[None]]


class DurableConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        durable: str,
        filters: list[str],
        handler: Handler,
        counters: Counter[str],
        *,
        ack_wait_s: float,
        max_deliver: int,
    ) -> None:
        self._js = js
        self._handler = handler
        self._counters = counters
        self._config = ConsumerConfig(
            durable_name=durable,
            filter_subjects=filters,
            ack_policy=AckPolicy.EXPLICIT,
            # A new planner plans for what happens from now on, not a week of history.
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=ack_wait_s,
            max_deliver=max_deliver,
        )
        self.ready = asyncio.Event()

    @property
    def name(self) -> str:
        return self._config.durable_name or ""

    async def run(self) -> None:
        """Consume until cancelled."""
        await self._ensure()
        sub = await self._js.pull_subscribe_bind(self.name, stream=subjects.FLEET_STREAM)
        self.ready.set()
        try:
            while True:
                for msg in await self._fetch(sub):
                    await self._one(msg)
        finally:
            with contextlib.suppress(NatsError):  # the connection may be closing too
                await sub.unsubscribe()

    async def _fetch(self, sub: JetStreamContext.PullSubscription) -> list[Msg]:
        try:
            return await pull.fetch(sub, FETCH_BATCH, FETCH_WAIT_S)
        except TransportError as exc:
            self._counters["fleet.fetch_errors"] += 1
            log.warning("consumer %s: %s", self.name, exc, extra={"consumer": self.name})
            await asyncio.sleep(RETRY_DELAY_S)  # a back-off while nats-py reconnects
            return []

    async def _ensure(self) -> None:
        try:
            await self._js.add_consumer(subjects.FLEET_STREAM, config=self._config)
        except BadRequestError as exc:
            # Made by an older replica with other settings: use it as it is.
            log.warning("consumer %s exists with other settings: %s", self.name, exc)

    async def _one(self, msg: Msg) -> None:
        try:
            await self._handler(msg)
        except DecodeError as exc:
            self._counters[f"fleet.rejected.{exc.reason}"] += 1
            log.warning("refused %s: %s", msg.subject, exc, extra={"subject": msg.subject})
            await _settle(msg.term())
            return
        except Exception:
            self._counters["fleet.errors"] += 1
            log.exception("handling %s failed", msg.subject, extra={"subject": msg.subject})
            await _settle(msg.nak(delay=NAK_DELAY_S))
            return
        await _settle(msg.ack())


async def _settle(reply: Awaitable[None]) -> None:
    """Ack/nak/term; if the hub cannot take it, JetStream redelivers after ack_wait."""
    try:
        await reply
    except NatsError as exc:
        log.warning("could not settle a FLEET message: %s", exc)
