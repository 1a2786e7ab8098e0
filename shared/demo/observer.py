"""`Observer`: the demo's own view of what reached the leaf and what reached the hub.

It is how the summary can say "nothing lost" from evidence rather than from the
components' own counters:

- leaf: a plain subscription to the device subjects (`baton.d.*.r`) on the leaf, where
  the leaf's UPLINK stream captures every reading it accepts. Each payload is decoded
  with the wire codec: a valid reading is recorded as (device, seq), a bad one counted
  by the reason the edge will quarantine it for.
- hub: an ordered consumer over FLEET from its first message (nats-py re-creates it
  after a gap, e.g. the hub restart of the flaky-uplink step). Readings are recorded by
  (device, seq) as well, so a duplicate is seen as one; reflex decisions bring their
  `latency_us`, acks their result.

`wait_delivered()` returns once every reading seen at the leaf is in FLEET: the end of
the uplink's drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared import codec, subjects
from shared.compat import timeout
from shared.errors import DecodeError
from shared.lifecycle import Service
from shared.messages import CommandAck, Decision, Reading

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 5.0
HEARTBEAT_S: Final = 1.0


@dataclass
class Tally:
    """What the observer has seen; mutated only on the event loop."""

    leaf: dict[str, set[int]] = field(default_factory=dict)
    leaf_bad: Counter[str] = field(default_factory=Counter)
    hub: dict[str, set[int]] = field(default_factory=dict)
    hub_messages: int = 0  # FLEET readings including any duplicate
    latencies_us: list[int] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)  # by rule or model name
    acks: Counter[str] = field(default_factory=Counter)  # ok | failed

    @property
    def leaf_count(self) -> int:
        return sum(len(seqs) for seqs in self.leaf.values())

    @property
    def hub_count(self) -> int:
        return sum(len(seqs) for seqs in self.hub.values())

    def missing(self) -> int:
        """Readings seen at the leaf that are not (yet) in FLEET."""
        return sum(len(seqs - self.hub.get(dev, set())) for dev, seqs in self.leaf.items())


class Observer(Service):
    """Subscribes to the leaf and the hub; an async context manager."""

    def __init__(self, leaf_url: str, hub_url: str, gateway: str) -> None:
        self._leaf_url = leaf_url
        self._hub_url = hub_url
        self._gateway = gateway
        self.tally = Tally()
        self.first_reading = asyncio.Event()
        self._changed = asyncio.Condition()
        self._conns: list[Client] = []
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        leaf = await self._connect(self._leaf_url, "leaf")
        self._subs.append(await leaf.subscribe(subjects.READINGS_ALL, cb=self._on_leaf))
        hub = await self._connect(self._hub_url, "hub")
        js = hub.jetstream()
        self._subs.append(
            await js.subscribe(
                f"fleet.{self._gateway}.>",
                stream=subjects.FLEET_STREAM,
                ordered_consumer=True,
                # Two missed heartbeats make nats-py re-create the consumer: after the
                # hub restart that is ~2 s of lag instead of ~10 s.
                idle_heartbeat=HEARTBEAT_S,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
                cb=self._on_fleet,
            )
        )

    async def _connect(self, url: str, name: str) -> Client:
        nc = await nats.connect(
            url,
            name=f"baton-demo-observer-{name}",
            connect_timeout=CONNECT_TIMEOUT_S,
            max_reconnect_attempts=-1,  # the hub comes back after the flaky-uplink step
            reconnect_time_wait=0.5,
            error_cb=_quiet,
        )
        self._conns.append(nc)
        return nc

    async def aclose(self) -> None:
        """Unsubscribe and close both connections. Safe to call twice."""
        subs, self._subs = self._subs, []
        conns, self._conns = self._conns, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except nats.errors.Error as exc:  # the connection is already gone
                log.debug("observer unsubscribe: %r", exc)
        for nc in conns:
            await nc.close()

    async def wait_delivered(self, timeout_s: float) -> bool:
        """True once every reading seen at the leaf is in FLEET; False on timeout."""
        try:
            async with timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: self.tally.missing() == 0)
        except asyncio.TimeoutError:
            return False
        return True

    # -- message handlers ---------------------------------------------------------------

    async def _on_leaf(self, msg: Msg) -> None:
        try:
            reading = codec.decode(msg.data, Reading)
        except DecodeError as exc:
            self.tally.leaf_bad[exc.reason] += 1
            return
        self.tally.leaf.setdefault(reading.device, set()).add(reading.seq)
        self.first_reading.set()

    async def _on_fleet(self, msg: Msg) -> None:
        parts = msg.subject.split(".")
        if len(parts) != 4:
            return
        kind, device = parts[2], parts[3]
        try:
            self._count(kind, device, msg.data)
        except DecodeError as exc:  # the cloud rejects and counts these; not ours to judge
            log.debug("observer: %s: %s", msg.subject, exc)
        async with self._changed:
            self._changed.notify_all()

    def _count(self, kind: str, device: str, data: bytes) -> None:
        tally = self.tally
        if kind == "r":
            reading = codec.decode(data, Reading)
            tally.hub_messages += 1
            tally.hub.setdefault(device, set()).add(reading.seq)
        elif kind == "dec":
            decision = codec.decode(data, Decision)
            if decision.command is not None:
                tally.latencies_us.append(decision.latency_us)
                tally.actions[decision.name] += 1
        elif kind == "ack":
            ack = codec.decode(data, CommandAck)
            tally.acks["ok" if ack.ok else "failed"] += 1


async def _quiet(exc: Exception) -> None:
    # Disconnects during the flaky-uplink step are expected; the component logs say more.
    log.debug("observer connection: %r", exc)
