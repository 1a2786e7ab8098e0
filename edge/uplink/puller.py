"""A continuous pull from a JetStream consumer, its deliveries taken by callback.

nats-py's `fetch()` awaits each message through a new task (`next_msg` wraps a queue
get in `create_task` + `wait_for`): at the forwarder's rates that was a third of its
CPU. This keeps pull requests open instead, the way the "consume" of the simplified
JetStream API does (ADR-37): up to two batches are asked for ahead, so the next batch
arrives while the current one is at the hub, and delivered messages land in a deque.

Bookkeeping, per ADR-37/ADR-13: every delivered message uses one unit of the credit
asked for; a pull that ends (408 expired, 409 refused) reports what it still had in
`Nats-Pending-Messages`, which is given back.

`take()` raises `StalePull` when the connection was re-established since `start()`,
or when the server answered a pull with 503 (its JetStream went away) or a 409 other
than a request limit ("Server Shutdown", "Leadership Change"). Deliveries and acks may
have been lost with the connection: the forwarder then re-creates its consumer, which
redelivers what was not acked at once and in order, instead of after AckWait behind
newer messages.

Silence is not such a sign by itself. An open pull that hears nothing (no message, no
idle heartbeat) for `STALE_S` is checked with the consumer's info: a leaf that stores
every write with `sync_interval: always` falls seconds behind under load, heartbeats
included, and re-creating the consumer then would only pause forwarding and re-send
what was in flight. The consumer answering, or its API not answering in time (as busy
as the pull), keeps the pull; a consumer that holds none of our pull requests any more
has them asked again; a deleted consumer raises `NotFoundError`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js.errors import NotFoundError, ServiceUnavailableError

from shared.compat import timeout

# A pull request lives this long, then the server ends it (408) and we ask again.
EXPIRES_S = 5.0
# The server sends a `100 Idle Heartbeat` this often on an open pull with nothing to send.
HEARTBEAT_S = 1.0
# Silence this long makes `take()` ask the leaf whether the consumer still holds the pull.
STALE_S = 3 * HEARTBEAT_S
# That question's own deadline; no answer in time means a busy leaf, not a lost pull.
PROBE_TIMEOUT_S = 2.0
_NS = 1_000_000_000
_STATUS = "Status"
_PENDING = "Nats-Pending-Messages"
_GONE = ("Consumer Deleted", "Consumer is push based")
# 409s that end one request for breaking a limit ("Exceeded MaxWaiting", ...).
_LIMITS = ("Exceeded", "Message Size Exceeds")


class StalePull(NatsError):
    """The pull cannot be trusted any more: the leaf restarted, its JetStream went away
    or the connection dropped; deliveries and acks may have been lost."""


class Puller:
    """Pulls from `consumer` on `stream`; `api` is the JetStream API prefix of its domain."""

    def __init__(self, nc: Client, api: str, stream: str, consumer: str, batch: int) -> None:
        self._nc = nc
        self._next_subject = f"{api}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._info_subject = f"{api}.CONSUMER.INFO.{stream}.{consumer}"
        self._batch = batch
        self._inbox = nc.new_inbox()
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._first_at = 0.0  # loop time the oldest buffered message arrived
        self._wanted = 1  # how many buffered messages wake `take()` (1, or its limit)
        self._requested = 0
        self._heard = 0.0
        self._error: Exception | None = None
        self._reconnects = 0
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._reconnects = self._nc.stats["reconnects"]
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None and not self._nc.is_closed:
            await sub.unsubscribe()

    @property
    def buffered(self) -> list[Msg]:
        """Delivered, not yet taken (unacked: they count against AckWait too)."""
        return list(self._buffer)

    @property
    def ready(self) -> bool:
        """Whether `take()` would return (or raise) without waiting."""
        return bool(self._buffer) or self._error is not None

    async def take(self, limit: int, wait_s: float, linger_s: float = 0.0) -> list[Msg]:
        """Up to `limit` delivered messages in stream order; waits up to `wait_s` for one,
        then up to `linger_s` after its arrival for `limit` of them (a batch instead of
        a trickle of single messages).

        Raises `NotFoundError` once the server said the consumer is gone, `StalePull`
        when the server went away or the connection was re-established.
        """
        if wait_s > 0 and not self._buffer:
            await self._check_silence()
        await self._ask()
        if wait_s > 0:
            await self._wait_for(1, wait_s)
        if linger_s > 0 and self._buffer:
            lingered = self._first_at + linger_s - asyncio.get_running_loop().time()
            await self._wait_for(limit, lingered)
        if self._error is not None:
            raise self._error
        taken = [self._buffer.popleft() for _ in range(min(limit, len(self._buffer)))]
        if self._buffer:
            self._first_at = asyncio.get_running_loop().time()
        await self._ask()  # the next batch travels while this one is forwarded
        return taken

    async def _wait_for(self, count: int, wait_s: float) -> None:
        """Until `count` messages are buffered, the pull ended or failed, or `wait_s`."""
        if len(self._buffer) >= count or self._error is not None or wait_s <= 0:
            return
        self._wanted = count
        self._arrived.clear()
        try:
            async with timeout(wait_s):
                await self._arrived.wait()
        except asyncio.TimeoutError:
            pass
        finally:
            self._wanted = 1

    async def _check_silence(self) -> None:
        """Ask the consumer about a pull that went quiet for `STALE_S` (module doc)."""
        loop = asyncio.get_running_loop()
        if not self._requested or loop.time() - self._heard <= STALE_S:
            return
        try:
            reply = await self._nc.request(self._info_subject, b"", timeout=PROBE_TIMEOUT_S)
        except NoRespondersError:
            raise StalePull("JetStream unavailable") from None
        except (asyncio.TimeoutError, NatsError):
            self._heard = loop.time()  # as slow as the pull: a busy leaf; look again later
            return
        info = json.loads(reply.data)
        error = info.get("error")
        if error:
            if error.get("code") == 404:
                raise NotFoundError(code=404, description=error.get("description", ""))
            raise ServiceUnavailableError(
                code=error.get("code"), description=error.get("description", "")
            )
        if not info.get("num_waiting"):
            self._requested = 0  # our pulls ended unheard: ask afresh, nothing was lost
        self._heard = loop.time()

    async def refill(self) -> None:
        """Keep up to two batches asked for ahead (`take()` does it too); call it while
        busy elsewhere, so deliveries keep coming. `StalePull` as `take()`."""
        await self._ask()

    async def _ask(self) -> None:
        if self._nc.stats["reconnects"] != self._reconnects:
            raise StalePull("the connection to the leaf was re-established")
        now = asyncio.get_running_loop().time()
        want = 2 * self._batch - self._requested - len(self._buffer)
        if want < self._batch and self._requested:
            return
        if want <= 0:
            return
        request = {
            "batch": want,
            "expires": int(EXPIRES_S * _NS),
            "idle_heartbeat": int(HEARTBEAT_S * _NS),
        }
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
        self._requested += want
        self._heard = now

    async def _on_msg(self, msg: Msg) -> None:
        self._heard = now = asyncio.get_running_loop().time()
        status = msg.headers.get(_STATUS) if msg.headers else None
        if status is None:
            buffer = self._buffer
            buffer.append(msg)
            self._requested -= 1
            if len(buffer) == 1:
                self._first_at = now
            if len(buffer) >= self._wanted:
                self._arrived.set()  # else `take()` lingers on: no wake-up per message
            return
        if status == "100":
            return  # idle heartbeat: the pull is alive
        self._ended(status, msg.headers or {})
        self._arrived.set()

    def _ended(self, status: str, headers: dict[str, str]) -> None:
        """A pull request is over: 404/408 (nothing left, expired) or 409 (refused)."""
        pending = headers.get(_PENDING)
        self._requested = max(0, self._requested - int(pending)) if pending else 0
        description = headers.get("Description", "")
        if status == "503":  # no responders: the server's JetStream is gone for now
            self._error = StalePull("JetStream unavailable")
            return
        if status != "409" or description.startswith(_LIMITS):
            return  # only this request is over
        if any(gone in description for gone in _GONE):
            self._error = NotFoundError(code=409, description=description)
        else:  # "Server Shutdown", "Leadership Change": deliveries and acks may be lost
            self._error = StalePull(description)
