"""Local acks of forwarded messages: one purge of the leaf stream up to the last one.

A work-queue stream deletes a message when its consumer acks it, one message at a time,
and takes no other ack policy (nats-server refuses AckAll there, err 10098). On a leaf
that stores with `sync_interval: always` every such delete is a write and an fsync:
measured on the development VM, ~90-110 µs of the leaf's CPU per message and a ceiling
near 3,000 msgs/s, below what sensors send. A purge up to a stream sequence (the
JetStream API's STREAM.PURGE with `{"seq": n}`: every message below n) deletes a whole
forwarded run in one operation: ~5 µs a message at 512 a purge, 17-20k msgs/s. The
consumer drops purged messages from its pending set as if they were acked (nats-server
`consumer.purge`), so AckWait never redelivers them and MaxAckPending frees up.

Only the forwarder may purge: it sees every message of the stream in stream order, and
calls `through(seq)` only once the hub stored that message and every one before it.
Everything below `seq` is then forwarded (or was never forwardable and is dropped on
purpose: invalid payloads, acked one by one where they are found).

A stream sequence names a message only within one life of the leaf: a leaf killed
before it wrote its last messages comes back with a shorter stream and gives their
sequences to new ones. An ack is bound to the consumer that delivered the message (and
the forwarder re-creates its consumer after any reconnect), but a purge is not; and a
client that reconnects sends what it had not written yet to the new server. So purges
travel on a connection of their own that never reconnects, opened (`open()`) for each
binding of the consumer before the consumer is created: every sequence it purges was
delivered by the leaf it is connected to. When it is lost, `broken` says so and the
forwarder binds afresh. (Deleting and re-creating the UPLINK stream by hand while the
forwarder runs is the one way left to re-use sequences under it: stop the daemon first.)

One purge is in flight at a time; a `through()` meanwhile raises the target, sent when
the answer comes. A purge is idempotent, so one whose answer never came is sent again
by `retry()` after `PURGE_TIMEOUT_S`. A purge that fails leaves the messages pending:
the next `through()` covers them, and at worst AckWait redelivers them to the forwarder,
which acks them one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from edge.uplink.stats import UplinkCounters
from shared.compat import timeout

log = logging.getLogger(__name__)

# A purge unanswered this long is taken as lost and sent again.
PURGE_TIMEOUT_S = 5.0
# The purge connection is to the local leaf: it answers at once or is not running.
CONNECT_TIMEOUT_S = 5.0

Connect = Callable[[], Awaitable[Client]]


def same_server(nc: Client) -> Connect:
    """Connects like `nc` did (its URL, user, password, token, TLS), never reconnecting."""

    async def connect() -> Client:
        url = nc.connected_url
        if url is None:
            raise nats.errors.ConnectionClosedError
        return await nats.connect(
            url.geturl(),
            name="baton-uplink-purge",
            allow_reconnect=False,
            connect_timeout=2,
            user=nc.options.get("user"),
            password=nc.options.get("password"),
            token=nc.options.get("token"),
            tls=nc.options.get("tls"),
            tls_hostname=nc.options.get("tls_hostname"),
            error_cb=_quiet,
        )

    return connect


async def _quiet(exc: Exception) -> None:
    # Its loss is `broken`, handled by the forwarder; nothing for the log to add.
    log.debug("purge connection: %r", exc)


class LocalAcks:
    """Purges `stream` (JetStream API prefix `api`) up to what the hub has stored."""

    def __init__(self, connect: Connect, api: str, stream: str, counters: UplinkCounters) -> None:
        self._connect = connect
        self._subject = f"{api}.STREAM.PURGE.{stream}"
        self._counters = counters
        self._nc: Client | None = None
        self._inbox = ""
        self._target = 0  # purge every message below this sequence
        self._done = 0  # the leaf confirmed a purge below this one
        self._sent = 0  # the purge in flight (0: none)
        self._sent_at = -math.inf

    async def open(self) -> None:
        """A new connection to the leaf for a new binding of the consumer; forgets every
        sequence of the last one (nothing of it is purged any more)."""
        await self._close(send=False)
        self._target = self._done = self._sent = 0
        self._sent_at = -math.inf
        async with timeout(CONNECT_TIMEOUT_S):
            nc = await self._connect()
        try:
            self._inbox = nc.new_inbox()
            await nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)
        except BaseException:
            await nc.close()
            raise
        self._nc = nc

    async def aclose(self) -> None:
        """Send what is due (without waiting for the answer) and close. Safe twice."""
        await self._close(send=True)

    async def _close(self, *, send: bool) -> None:
        nc, self._nc = self._nc, None
        if nc is None:
            return
        with contextlib.suppress(NatsError, OSError):
            if send and nc.is_connected and self._target > max(self._done, self._sent):
                await self._publish(nc)
        await nc.close()  # writes what is buffered first

    @property
    def broken(self) -> bool:
        """The purge connection is gone: bind the consumer afresh (`open()`)."""
        return self._nc is None or not self._nc.is_connected

    @property
    def pending(self) -> bool:
        """Whether forwarded messages still wait for their purge."""
        return self._target > self._done

    async def through(self, seq: int) -> None:
        """The hub stored stream sequence `seq` and every one before it: purge them."""
        if seq + 1 <= self._target:
            return
        self._target = seq + 1
        if not self._sent:
            await self._send()

    async def retry(self) -> None:
        """Send the purge again if it is overdue: unanswered (a lost request) or
        refused, `PURGE_TIMEOUT_S` after it was sent."""
        if self.pending and asyncio.get_running_loop().time() - self._sent_at > PURGE_TIMEOUT_S:
            await self._send()

    async def _send(self) -> None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return  # `broken`: the forwarder binds afresh, which forgets this target
        try:
            await self._publish(nc)
        except NatsError as exc:
            log.debug("purge not sent: %r", exc)

    async def _publish(self, nc: Client) -> None:
        self._sent, self._sent_at = self._target, asyncio.get_running_loop().time()
        request = json.dumps({"seq": self._sent}).encode()
        await nc.publish(self._subject, request, reply=f"{self._inbox}.{self._sent}")

    async def _on_reply(self, msg: Msg) -> None:
        sent = int(msg.subject.rpartition(".")[2])  # the reply subject names the purge
        if sent == self._sent:
            self._sent = 0
        try:
            answer = json.loads(msg.data)
        except ValueError:  # a 503 status (no JetStream) has no body
            answer = None
        if not (isinstance(answer, dict) and answer.get("success") is True):
            self._counters.errors += 1
            why = answer.get("error") if isinstance(answer, dict) else msg.data[:80]
            log.warning("leaf store not purged below %d: %s", sent, why)
            return  # the next through() or retry() sends it again
        self._done = max(self._done, sent)
        if self._target > self._done and not self._sent:
            await self._send()
