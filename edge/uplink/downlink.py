"""`Downlink`: commands, desired state and rule/model updates from the hub.

A durable pull consumer named `edge-<gw>` lives on the hub's DOWNLINK stream, filtered
to `downlink.<gw>.>`, and is read from the gateway across the leaf node link (JetStream
domain `hub`). Being durable on the hub, it keeps what arrives while the gateway is
offline; the gateway gets it, in order, when the link is back.

Each message is acked after the handler returns. A refused or invalid one (bad hash,
bad schema, wrong addressee, `RuleError`/`ModelError`) is acked too, so it is never
redelivered forever; it is counted, logged and reported to the hub on
`uplink.<gw>.ev.<gw>` (report.py). An unexpected handler error is nak'ed with a delay
and redelivered up to `MAX_DELIVER` times, then reported as refused. Handlers must be
idempotent: a command redelivered after a lost ack carries the same `cmd_id`.

While the hub is unreachable the loop re-binds with backoff; nothing else waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.object_store import ObjectStore

from edge.errors import UplinkError
from edge.uplink import routing
from edge.uplink.backoff import Backoff
from edge.uplink.config import DownlinkConfig
from edge.uplink.dispatch import Dispatcher, DownlinkHandler, Refused
from edge.uplink.lifecycle import cancel_until_done
from edge.uplink.report import KIND, DownlinkReport, EventSink
from edge.uplink.stats import DownlinkCounters, DownlinkStats
from shared import codec, subjects
from shared.lifecycle import Service
from shared.messages import Message, ModelUpdate, RulesUpdate

log = logging.getLogger(__name__)

# A pull waits this long across the link before it is renewed: the idle cost, one
# request per gateway this often at the hub. One message per pull: nats-py returns a
# one-message fetch as soon as it arrives (a batch fetch waits out its expiry for the
# rest), and nothing sits unacked in a buffer while the handler is busy.
FETCH_WAIT_S = 5.0
# When idle this long, ask the hub for the consumer: the only way to notice that it
# vanished (nats-py reports a 409 "Consumer Deleted" on a pull as a plain time-out).
CHECK_EVERY_S = 30.0
# Unexpected handler failures redelivered at most this many times (then refused).
MAX_DELIVER = 5
# Redelivery delay after a handler failure: 0.5 s, 1 s, 2 s, 4 s.
NAK_DELAY_FIRST_S = 0.5


class Downlink(Service):
    """Hub → gateway. `nc` is the connection to the gateway's leaf."""

    def __init__(
        self,
        nc: Client,
        gateway: str,
        cfg: DownlinkConfig,
        handler: DownlinkHandler,
        *,
        events: EventSink | None = None,
    ) -> None:
        subjects.check_id(gateway, "gateway id")
        self._gateway = gateway
        self._cfg = cfg
        self._durable = cfg.durable or f"edge-{gateway}"
        self._events = events
        self._hub = nc.jetstream(domain=subjects.HUB_DOMAIN)
        self._leaf = nc.jetstream(domain=subjects.gateway_domain(gateway))
        self._models: ObjectStore | None = None
        self._dispatcher = Dispatcher(
            gateway, handler, self._fetch_model, fetch_timeout_s=cfg.model_fetch_timeout_s
        )
        self._backoff = Backoff(cfg.retry_backoff_max_s)
        self._counters = DownlinkCounters()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Start consuming in the background; never waits for the hub."""
        if self._closed:
            raise UplinkError("this Downlink is closed; make a new one")
        if self._task is None and self._cfg.enabled:
            self._task = asyncio.create_task(self._run(), name=f"downlink-{self._gateway}")

    async def aclose(self) -> None:
        """Stop; a message being handled is redelivered later if it was not acked."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_until_done(task)

    def stats(self) -> DownlinkStats:
        return self._counters.snapshot()

    # -- the loop --------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                sub = await self._bind()
            except (NatsError, asyncio.TimeoutError) as exc:
                await self._away("subscribing", exc)
                continue
            try:
                await self._consume(sub)
            except (NatsError, asyncio.TimeoutError) as exc:
                await self._away("consuming", exc)
            finally:
                with contextlib.suppress(NatsError):
                    await sub.unsubscribe()

    async def _bind(self) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            # Named: a gateway's credentials allow only the create form that names the
            # consumer and its filter, which the server checks against its permissions.
            name=self._durable,
            durable_name=self._durable,
            description=f"downlink of gateway {self._gateway}",
            filter_subject=subjects.downlink_all(self._gateway),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._cfg.ack_wait_s,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=MAX_DELIVER,
        )
        # Create-or-update (idempotent with the same config, nats-server 2.10+).
        await self._hub.add_consumer(subjects.DOWNLINK_STREAM, config=config)
        sub = await self._hub.pull_subscribe_bind(self._durable, stream=subjects.DOWNLINK_STREAM)
        self._counters.hub_connected = True
        self._backoff.reset()
        log.info("downlink subscribed", extra={"durable": self._durable})
        return sub

    async def _consume(self, sub: JetStreamContext.PullSubscription) -> None:
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while True:
            try:
                msgs = await sub.fetch(1, timeout=FETCH_WAIT_S)
            except asyncio.TimeoutError:
                msgs = []
            for msg in msgs:
                await self._handle(msg)
            if msgs:
                checked = loop.time()
            elif loop.time() - checked > CHECK_EVERY_S:
                await sub.consumer_info()  # raises when the hub or the consumer is gone
                checked = loop.time()

    async def _away(self, what: str, exc: BaseException) -> None:
        level = logging.WARNING if self._counters.hub_connected else logging.DEBUG
        log.log(level, "downlink: hub unreachable while %s: %r; retrying", what, exc)
        self._counters.hub_connected = False
        await self._backoff.wait()

    # -- one message -----------------------------------------------------------------

    async def _handle(self, msg: Msg) -> None:
        self._counters.received += 1
        try:
            message = await self._in_progress(msg, self._dispatcher.dispatch(msg.subject, msg.data))
        except Refused as refused:
            await self._refuse(msg, refused.reason, refused.version)
            await msg.ack()
        except Exception as exc:
            await self._failed(msg, exc)
        else:
            await msg.ack()
            self._counters.applied += 1
            if isinstance(message, (RulesUpdate, ModelUpdate)):
                await self._report(msg, message.version, reason=None)

    async def _in_progress(self, msg: Msg, handling: Coroutine[Any, Any, Message]) -> Message:
        """Await the handler, telling the hub it is in progress (+WPI, ADR-15) every
        third of AckWait, so a slow one (a model download) is not redelivered meanwhile."""
        task = asyncio.create_task(handling, name=f"downlink-{self._gateway}-handler")
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self._cfg.ack_wait_s / 3)
                if not task.done():
                    await msg.in_progress()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return task.result()

    async def _failed(self, msg: Msg, exc: Exception) -> None:
        delivered = msg.metadata.num_delivered
        if delivered >= MAX_DELIVER:
            await self._refuse(msg, f"failed {delivered} times: {exc!r}", None)
            await msg.term()
            return
        self._counters.handler_errors += 1
        log.error("downlink handler failed on %s", msg.subject, exc_info=exc)
        await msg.nak(delay=NAK_DELAY_FIRST_S * 2 ** (delivered - 1))

    async def _refuse(self, msg: Msg, reason: str, version: str | None) -> None:
        self._counters.refused += 1
        log.warning(
            "downlink message refused: %s",
            reason,
            extra={"subject": msg.subject, "version": version},
        )
        await self._report(msg, version, reason=reason)

    async def _report(self, msg: Msg, version: str | None, *, reason: str | None) -> None:
        report = DownlinkReport(
            gw=self._gateway,
            subject=msg.subject,
            version=version,
            reason=reason,
            seq=msg.metadata.sequence.stream,
        )
        event = report.event()
        payload = codec.encode(event)
        if self._events is not None:
            self._events.submit(
                KIND, self._gateway, report.key, payload, traceparent=event.traceparent
            )
            return
        subject = subjects.uplink(self._gateway, KIND, self._gateway)
        headers = {
            routing.MSG_ID: routing.message_id(self._gateway, self._gateway, KIND, report.key),
            routing.TRACEPARENT: event.traceparent,
        }
        try:
            await self._leaf.publish(subject, payload, headers=headers)
        except (NatsError, asyncio.TimeoutError) as exc:
            log.warning("downlink report not stored at the leaf: %r", exc)

    async def _fetch_model(self, update: ModelUpdate) -> bytes:
        if self._models is None:
            self._models = await self._hub.object_store(subjects.MODELS_STORE)
        result = await self._models.get(update.object_name)
        return result.data or b""
