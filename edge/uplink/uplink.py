"""`Uplink`: the gateway's durable path to the hub, as one async context manager.

    sensors ─MQTT─▶ leaf ──▶ UPLINK (leaf store) ──forwarder──▶ hub FLEET
    daemon ─submit()──────▶ ┘

It owns three named tasks in one TaskGroup: the forwarder, the submitter and a stats
watcher. `start()` only makes sure the leaf stream exists; it never waits for the hub or
for the backlog, which drains in the background while new readings keep arriving.

Full-disk policy (`UplinkConfig.when_full`), i.e. what happens when the leaf store
reaches `max_bytes` (or a message `max_age_s`) before the hub took it:

- `drop_oldest` (default): the leaf discards the oldest unforwarded messages to store
  new ones. Fresh data wins; the loss is counted in `UplinkStats.dropped_full` (the
  forwarder sees the gap in the stream sequence) and logged.
- `refuse_new`: the backlog is kept and new writes are refused. `submit()` sees the
  refusal (counted in `errors`). A sensor publishing over MQTT does *not*: nats-server
  acknowledges a QoS 1 PUBLISH before JetStream stores it, so its readings are lost at
  the leaf while the store is full (measured with nats-server 2.15; see README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError

from edge.errors import UplinkError
from edge.uplink import forwarder as fwd
from edge.uplink.acks import Connect, same_server
from edge.uplink.backoff import Backoff
from edge.uplink.config import UplinkConfig
from edge.uplink.forwarder import Forwarder
from edge.uplink.lifecycle import cancel_until_done
from edge.uplink.pipeline import Publisher
from edge.uplink.stats import UplinkCounters, UplinkStats
from edge.uplink.submitter import Submitter
from shared import streams, subjects
from shared.compat import TaskGroup
from shared.hlc import HybridLogicalClock
from shared.lifecycle import Service

log = logging.getLogger(__name__)

# The backlog depth is read from the leaf this often.
STATS_INTERVAL_S = 1.0
# An idle gateway asks the hub's JetStream this often whether it answers; a busy one
# knows from its PubAcks. (A fleet of 1,000 idle gateways: 200 requests/s at the hub.)
HUB_PROBE_S = 5.0
# One JetStream API round trip; longer means the hub is not answering.
PROBE_TIMEOUT_S = 2.0
# A loop that dies of an unexpected error is restarted after at most this long.
RESTART_MAX_S = 5.0


class Uplink(Service):
    """Leaf store-and-forward to the hub. `nc` is a connection to the gateway's LEAF.

    `purge_connect` opens the forwarder's own connection to the same leaf (see
    `edge.uplink.acks`); by default like `nc` (URL, user, password, token, TLS)."""

    def __init__(
        self,
        nc: Client,
        gateway: str,
        cfg: UplinkConfig,
        *,
        clock: HybridLogicalClock | None = None,
        purge_connect: Connect | None = None,
    ) -> None:
        subjects.check_id(gateway, "gateway id")
        self._gateway = gateway
        self._cfg = cfg
        self._counters = UplinkCounters()
        clock = clock or HybridLogicalClock()
        self._publisher = Publisher(nc)
        self._submitter = Submitter(gateway, cfg, self._counters, self._publisher)
        self._forwarder = Forwarder(
            nc, gateway, cfg, self._counters, clock, self._publisher,
            purge_connect or same_server(nc),
        )  # fmt: skip
        self._leaf = nc.jetstream(domain=subjects.gateway_domain(gateway), timeout=PROBE_TIMEOUT_S)
        self._hub = nc.jetstream(domain=subjects.HUB_DOMAIN, timeout=PROBE_TIMEOUT_S)
        self._task: asyncio.Task[None] | None = None
        self._children: list[asyncio.Task[None]] = []
        self._closed = False

    async def start(self) -> None:
        """Ensure the leaf UPLINK stream and start forwarding; returns at once after that."""
        if self._closed:
            raise UplinkError("this Uplink is closed; make a new one")
        if self._task is not None:
            return
        config = streams.uplink_stream(
            self._gateway,
            max_bytes=self._cfg.max_bytes,
            max_age_s=self._cfg.max_age_s,
            when_full=self._cfg.when_full,
        )
        try:
            await streams.ensure_stream(self._leaf, config)
            await self._publisher.start()
        except (NatsError, asyncio.TimeoutError) as exc:
            raise UplinkError(f"leaf UPLINK stream unavailable: {exc!r}") from exc
        self._task = asyncio.create_task(self._run(), name=f"uplink-{self._gateway}")

    def submit(
        self,
        kind: str,
        device: str,
        key: str | int,
        payload: bytes,
        *,
        traceparent: str | None = None,
    ) -> None:
        """Queue `payload` for `fleet.<gw>.<kind>.<device>`; never blocks.

        Nats-Msg-Id is `msg_id(gw, device, kind, key)`: the same key means the same
        item, stored once. ValueError for an unknown kind or an invalid device id.
        """
        self._submitter.submit(kind, device, key, payload, traceparent=traceparent)

    async def flush(self) -> None:
        """Await the leaf's PubAck of everything submitted so far (SIGTERM drain).

        Bounded: an item the leaf does not take after `submitter.MAX_ATTEMPTS` rounds is
        counted in `submit_failed` and given up. Returns at once when not running.
        """
        if self._task is None:
            if self._submitter.queued:
                log.warning(
                    "uplink not running: %d submitted item(s) not stored", self._submitter.queued
                )
            return
        await self._submitter.flush()

    def stats(self) -> UplinkStats:
        self._counters.duplicates = self._publisher.duplicates
        return self._counters.snapshot()

    async def backlog(self) -> tuple[int, int]:
        """Read the backlog (messages, bytes) from the leaf now."""
        await self._refresh_backlog()
        return self._counters.backlog_msgs, self._counters.backlog_bytes

    async def aclose(self) -> None:
        """Stop at once, without flushing; whatever the forwarder held is re-sent by the
        next Uplink (and deduped at the hub). Safe to call twice."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_until_done(task, self._children)
        await self._forwarder.aclose()
        await self._publisher.aclose()

    # -- tasks -----------------------------------------------------------------------

    async def _run(self) -> None:
        name = f"uplink-{self._gateway}"
        loops = [("submit", self._submitter.run), ("stats", self._watch)]
        if self._cfg.enabled:
            loops.append(("forward", self._forwarder.run))
        async with TaskGroup() as tg:
            self._children = [
                tg.create_task(self._keep(loop), name=f"{name}-{what}") for what, loop in loops
            ]

    async def _keep(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Run `loop` forever: an unexpected error is logged, counted, and restarted."""
        backoff = Backoff(RESTART_MAX_S)
        while True:
            try:
                await loop()
            except Exception:
                self._counters.errors += 1
                log.exception(
                    "uplink loop %s failed; restarting", getattr(loop, "__qualname__", loop)
                )
                await backoff.wait()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        probed = -HUB_PROBE_S
        while True:
            with contextlib.suppress(NatsError, asyncio.TimeoutError):
                await self._refresh_backlog()
            if loop.time() - max(probed, self._forwarder.last_stored) >= HUB_PROBE_S:
                await self._probe_hub()
                probed = loop.time()
            await asyncio.sleep(STATS_INTERVAL_S)

    async def _refresh_backlog(self) -> None:
        stream = await self._leaf.stream_info(subjects.UPLINK_STREAM)
        msgs = stream.state.messages
        with contextlib.suppress(NotFoundError):
            info = await self._leaf.consumer_info(subjects.UPLINK_STREAM, fwd.DURABLE)
            msgs = (info.num_pending or 0) + (info.num_ack_pending or 0)
        self._counters.backlog_msgs = msgs
        self._counters.backlog_bytes = stream.state.bytes

    async def _probe_hub(self) -> None:
        try:
            await self._hub.account_info()
        except (NatsError, asyncio.TimeoutError):
            reachable = False
        else:
            reachable = True
        # A hub that answers but refuses our publishes is not "connected" for us.
        self._counters.hub_connected = reachable and not self._forwarder.stalled
