"""The daemon's own uplink items (decisions, twin reports, events) into the leaf store.

`submit()` never blocks the caller: it queues, and one task publishes the queue to
`uplink.<gw>.<kind>.<device>` pipelined, where the leaf's UPLINK stream stores it. The
Nats-Msg-Id set here is the one the hub dedupes on, and the leaf dedupes on it too, so
re-sending after a lost PubAck (a leaf restart) stores nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from nats.js.errors import APIError

from edge.uplink import routing
from edge.uplink.backoff import Backoff
from edge.uplink.config import UplinkConfig
from edge.uplink.pipeline import Outgoing, Publisher
from edge.uplink.stats import UplinkCounters
from shared import subjects

log = logging.getLogger(__name__)

# Items published per round; PubAcks are settled together.
ROUND = 512
# A submit waits this long for others to share its round: a decision per fired reading
# then costs the leaf connection one write and one settlement per LINGER_S, not one each.
LINGER_S = 0.01
# Memory bound while the leaf itself is unreachable (~100 MB of 1 KiB decisions).
MAX_QUEUED = 100_000
# A leaf that does not answer after this many rounds is down for longer than a restart;
# the item is counted in `errors` and dropped, so flush() (SIGTERM) always ends.
MAX_ATTEMPTS = 5
# JSClusterNotAvailErr, "JetStream system temporarily unavailable": retry.
JS_NOT_AVAILABLE = 10008


@dataclass(slots=True)
class _Item:
    out: Outgoing
    attempts: int = 0


class Submitter:
    """Queue + publisher task of `Uplink.submit`."""

    def __init__(
        self, gateway: str, cfg: UplinkConfig, counters: UplinkCounters, publisher: Publisher
    ) -> None:
        self._gateway = gateway
        self._cfg = cfg
        self._counters = counters
        self._publisher = publisher
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._backoff = Backoff(cfg.retry_backoff_max_s)

    def submit(
        self,
        kind: str,
        device: str,
        key: str | int,
        payload: bytes,
        *,
        traceparent: str | None = None,
    ) -> None:
        if kind not in subjects.UPLINK_TYPES:
            raise ValueError(f"uplink kind {kind!r} is not one of {subjects.UPLINK_TYPES}")
        subjects.check_id(device, "device id")
        if len(self._queue) >= MAX_QUEUED:
            self._counters.submit_failed += 1
            self._counters.errors += 1
            log.warning("uplink queue full (%d items); dropped a %s item", MAX_QUEUED, kind)
            return
        headers = {routing.MSG_ID: routing.message_id(self._gateway, device, kind, key)}
        if traceparent:
            headers[routing.TRACEPARENT] = traceparent
        subject = subjects.uplink(self._gateway, kind, device)
        self._queue.append(_Item(Outgoing(subject, payload, headers)))
        self._counters.submitted += 1
        self._idle.clear()
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def flush(self) -> None:
        """Return once every submitted item was stored by the leaf or given up on."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._queue) < ROUND:
                # A batching window, not a wait for state: whatever is submitted in it
                # shares the round.
                await asyncio.sleep(LINGER_S)
            self._wake.clear()
            while self._queue:
                await self._round()
            self._idle.set()

    async def _round(self) -> None:
        items = [self._queue.popleft() for _ in range(min(ROUND, len(self._queue)))]
        outcomes = await self._publisher.publish_all(
            [item.out for item in items], self._cfg.hub_ack_timeout_s
        )
        retry = [item for item, err in zip(items, outcomes, strict=True) if self._keep(item, err)]
        if not retry:
            self._backoff.reset()
            return
        # Back at the head, in order, so the leaf stores them in submission order.
        self._queue.extendleft(reversed(retry))
        await self._backoff.wait()

    def _keep(self, item: _Item, err: BaseException | None) -> bool:
        """Whether a failed item is worth another round."""
        if err is None:
            return False
        item.attempts += 1
        # The leaf's JetStream answered no ("maximum bytes exceeded" under refuse_new):
        # the same bytes would be refused again, unless it was only not ready yet.
        refused = isinstance(err, APIError) and err.err_code != JS_NOT_AVAILABLE
        if refused or item.attempts >= MAX_ATTEMPTS:
            self._counters.submit_failed += 1
            self._counters.errors += 1
            log.warning(
                "uplink item dropped after %d attempt(s): %r",
                item.attempts,
                err,
                extra={"subject": item.out.subject, "msg_id": item.out.headers[routing.MSG_ID]},
            )
            return False
        return True
