"""Readings from the gateway's leaf nats-server, and commands back through it.

A core subscription (not a JetStream consumer) is the lowest-latency path: durability is
the leaf UPLINK stream's job, which captures `baton.d.*.r` itself, so a reading the
daemon never sees is still forwarded to the hub. A second one delivers the devices'
command acks (`baton.d.*.ack`), which settle the twin's desired versions. Commands are core publishes to
`baton.d.<device>.cmd`, which the leaf's MQTT listener delivers to the device's
`baton/d/<device>/cmd` subscription.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from edge.ingest.ports import Deliver
from shared import subjects
from shared.compat import timeout

log = logging.getLogger(__name__)

# A burst of readings can queue inside the client while the loop is busy; beyond this
# many the client drops (a slow consumer) rather than grow without bound. The stream
# still has every one of them.
PENDING_MSGS_LIMIT = 64 * 1024
# On stop, readings already received are still handled for up to this long.
DRAIN_TIMEOUT_S = 5.0


@functools.lru_cache(maxsize=4096)  # a gateway's devices: each command needs its subject
def command_subject(device: str) -> str:
    return subjects.mqtt_to_nats(subjects.mqtt_command(device))


class NatsSource:
    """`ReadingSource` over a core subscription on the leaf."""

    def __init__(
        self, nc: Client, subject: str = subjects.READINGS_ALL, *, acks: bool = True
    ) -> None:
        self._nc = nc
        self._subjects = (subject, subjects.ACKS_ALL) if acks else (subject,)
        self._subs: list[Subscription] = []
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        for subject in self._subjects:
            self._subs.append(
                await self._nc.subscribe(
                    subject, cb=self._on_msg, pending_msgs_limit=PENDING_MSGS_LIMIT
                )
            )

    async def _on_msg(self, msg: Msg) -> None:
        received_ns = time.perf_counter_ns()
        if self._deliver is not None:
            await self._deliver(msg.subject, msg.data, received_ns)

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            await self._drain(sub)
        self._deliver = None

    async def _drain(self, sub: Subscription) -> None:
        try:
            async with timeout(DRAIN_TIMEOUT_S):
                await sub.drain()  # type: ignore[no-untyped-call]
        except (asyncio.TimeoutError, NatsError) as exc:
            log.warning("subscription %s not drained (%r); dropping the rest", sub.subject, exc)
            if not self._nc.is_closed:
                await sub.unsubscribe()

    @property
    def connected(self) -> bool:
        return bool(self._nc.is_connected)


class NatsCommandSink:
    """`CommandSink` over core NATS publishes on the leaf."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc

    async def send(self, device: str, payload: bytes) -> None:
        await self._nc.publish(command_subject(device), payload)
