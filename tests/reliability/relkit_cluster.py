"""Helpers of the hub-cluster reliability tests: the shipped three-node hub, an R3 stream,
and a publisher that keeps publishing through faults and counts what it was told.

    HubCluster       the three shipped hub nodes (tests/deploy/_support renders them onto
                     free ports) with an orchestrator identity; kill, freeze (SIGSTOP),
                     thaw, restart a node; find a stream's leader; wait for replicas
    Publisher        `window` publishes in flight, each retried with its Nats-Msg-Id until
                     the stream acknowledges it; the ack times, so a test can say when
                     writes came back after a fault
    stored_ids(...)  every message id an R3 stream holds, read from its current leader

Refusals and recoveries are waited on as signals (a PubAck, the stream's own cluster
info); the short pauses between publish retries only pace a loop whose exit is a PubAck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import APIError, NotFoundError

from shared import streams
from shared.compat import TaskGroup, timeout
from shared.creds import CredStore, hub_authorization
from shared.errors import PortInUse
from shared.natsrun import NatsServer
from shared.natsrun.monitor import MonitorUnavailable, poll_until
from tests.deploy._support import (
    HUB_NODES,
    Certs,
    free_node_ports,
    hub_node,
    make_certs,
    wait_meta_leader,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

STREAM = "DOWNLINK"
SUBJECT = "downlink.gw1.cmd.dev-a"
# A raft election after a node's loss takes a few seconds; on two loaded cores, longer.
FAILOVER_S = 45.0
# One publish attempt; a timed-out one is retried with the same Nats-Msg-Id.
PUBLISH_TIMEOUT_S = 1.0
RETRY_PAUSE_S = 0.05
# The client notices a frozen server after ping_interval * max_outstanding_pings.
PING_INTERVAL_S = 1
MAX_OUTSTANDING_PINGS = 2
# Free ports are picked before binding; a busy machine can take one in between.
START_ATTEMPTS = 3


@dataclass
class HubCluster:
    """The shipped hub nodes, running; closed (all nodes stopped) by `aclose()`."""

    nodes: list[NatsServer]
    creds: CredStore
    certs: Certs
    frozen: set[str] = field(default_factory=set)

    def node(self, name: str) -> NatsServer:
        return next(node for node in self.nodes if node.name == name)

    async def orchestrator(self) -> Client:
        """The orchestrator's connection, to every node, noticing a frozen one fast."""
        return await nats.connect(
            [node.client_url for node in self.nodes],
            nkeys_seed_str=self.creds.orchestrator_seed(),
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=2,
            ping_interval=PING_INTERVAL_S,
            max_outstanding_pings=MAX_OUTSTANDING_PINGS,
        )

    def freeze(self, name: str) -> None:
        """SIGSTOP: the node stops answering anyone (peers and clients), as if cut off."""
        node = self.node(name)
        assert node.pid is not None, f"{name} is not running"
        os.kill(node.pid, signal.SIGSTOP)
        self.frozen.add(name)

    def thaw(self, name: str) -> None:
        node = self.node(name)
        if node.pid is not None:
            os.kill(node.pid, signal.SIGCONT)
        self.frozen.discard(name)

    async def aclose(self) -> None:
        for name in list(self.frozen):
            self.thaw(name)
        for node in reversed(self.nodes):
            await node.aclose()


@contextlib.asynccontextmanager
async def hub_cluster(
    folder: Path, *, creds: CredStore | None = None, certs: Certs | None = None
) -> AsyncIterator[HubCluster]:
    """Start the three shipped hub nodes in `folder`; yield once a meta leader is agreed.

    `creds` (default: a new store with the orchestrator only) decides who may log in.
    """
    creds = creds or CredStore.init(folder / "creds")
    certs = certs or make_certs(folder / "certs")
    auth = hub_authorization(creds)
    for attempt in range(START_ATTEMPTS):
        ports = free_node_ports()
        nodes = [hub_node(n, ports, folder / f"hub-{n}", certs, auth) for n in HUB_NODES]
        cluster = HubCluster(nodes, creds, certs)
        try:
            for node in cluster.nodes:
                await node.start()
        except PortInUse:
            # Another test on this machine took a port between our pick and our bind.
            await cluster.aclose()
            if attempt + 1 == START_ATTEMPTS:
                raise
            continue
        break
    try:
        await wait_meta_leader(cluster.nodes)
        yield cluster
    finally:
        await cluster.aclose()


async def create_r3_stream(nc: Client) -> None:
    """The orchestrator's DOWNLINK stream as production runs it: R3, file, dedupe window."""
    await nc.jetstream(timeout=10.0).add_stream(streams.downlink_stream(replicas=3))


async def stream_leader(nc: Client) -> str:
    info = await nc.jetstream(timeout=5.0).stream_info(STREAM)
    assert info.cluster is not None and info.cluster.leader, "the stream has no leader"
    return info.cluster.leader


async def wait_replicas_current(nc: Client, *, expect: int = 2) -> float:
    """Until the stream has a leader and `expect` replicas are current; the seconds spent."""
    js = nc.jetstream(timeout=2.0)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def current() -> bool:
        try:
            info = await js.stream_info(STREAM)
        except (NatsError, asyncio.TimeoutError, APIError):
            return False
        cluster = info.cluster
        if cluster is None or not cluster.leader:
            return False
        replicas = cluster.replicas or []
        return sum(1 for peer in replicas if peer.current and not peer.offline) >= expect

    await poll_until(current, timeout_s=FAILOVER_S)
    return loop.time() - started


async def move_leader_to(nc: Client, name: str) -> None:
    """Step the stream's leader down in favour of `name` (nats-server 2.11+), until it leads."""
    js = nc.jetstream(timeout=5.0)
    subject = f"$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}"
    body = json.dumps({"placement": {"preferred": name}}).encode()

    async def leads() -> bool:
        try:
            if await stream_leader(nc) == name:
                return True
            await nc.request(subject, body, timeout=5.0)
        except (NatsError, asyncio.TimeoutError, APIError, AssertionError):
            pass
        return False

    await poll_until(leads, timeout_s=FAILOVER_S)
    assert (await js.stream_info(STREAM)).cluster is not None


async def stored_ids(nc: Client) -> Counter[str]:
    """How many times each message id is stored, read by sequence from the stream's
    leader (no consumer: a new one may land on a replica that is still catching up).

    A request that finds the stream between leaders is asked again; the deadline bounds it.
    """
    js = nc.jetstream(timeout=5.0)
    seen: Counter[str] = Counter()
    async with timeout(FAILOVER_S):
        state = (await _retrying(lambda: js.stream_info(STREAM))).state
        for seq in range(state.first_seq, state.last_seq + 1):
            msg = await _retrying(lambda seq=seq: js.get_msg(STREAM, seq))
            seen[(msg.data or b"").decode()] += 1
    return seen


async def _retrying(request: Callable[[], Awaitable[T]]) -> T:
    while True:
        try:
            return await request()
        except (NatsError, asyncio.TimeoutError, APIError) as exc:
            if isinstance(exc, NotFoundError):
                raise
            log.debug("read retried: %r", exc)
            await asyncio.sleep(RETRY_PAUSE_S)  # pacing; the deadline is the caller's


class Publisher:
    """Publishes ids `prefix-0` .. `prefix-(n-1)`, `window` at a time, each until acked.

    `acked[id]` is the loop time of its PubAck; `attempts` counts every try. A test waits
    on `reached(k)` to put its fault in the middle of the publishing.
    """

    def __init__(self, nc: Client, n: int, *, window: int = 8, prefix: str = "m") -> None:
        self._js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self._n = n
        self._window = window
        self._prefix = prefix
        self._next = 0
        self.acked: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.attempts = 0
        self.failures = 0
        self._waiters: list[tuple[int, asyncio.Event]] = []

    def ids(self) -> list[str]:
        return [f"{self._prefix}-{i}" for i in range(self._n)]

    def reached(self, count: int) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.append((count, event))
        self._wake()
        return event

    async def run(self) -> None:
        async with TaskGroup() as tg:
            for worker in range(self._window):
                tg.create_task(self._work(), name=f"publisher-{self._prefix}-{worker}")

    def recovered_after(self, fault_at: float) -> float:
        """Seconds from `fault_at` to the first PubAck of a publish started after it."""
        after = [t for msg_id, t in self.acked.items() if self.started[msg_id] >= fault_at]
        assert after, "no publish started after the fault was acknowledged"
        return min(after) - fault_at

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._next < self._n:
            msg_id = f"{self._prefix}-{self._next}"
            self._next += 1
            while True:
                self.attempts += 1
                self.started[msg_id] = loop.time()
                try:
                    await self._js.publish(
                        SUBJECT, msg_id.encode(), headers={"Nats-Msg-Id": msg_id}
                    )
                except (NatsError, asyncio.TimeoutError, APIError) as exc:
                    self.failures += 1
                    log.debug("publish %s not acknowledged: %r", msg_id, exc)
                    # Pacing only: a "no responders" answer comes back at once while the
                    # stream elects a leader; the signal this loop waits for is a PubAck.
                    await asyncio.sleep(RETRY_PAUSE_S)
                    continue
                self.acked[msg_id] = loop.time()
                self._wake()
                break

    def _wake(self) -> None:
        for count, event in self._waiters:
            if len(self.acked) >= count:
                event.set()


async def probe_publish(nc: Client, msg_id: str, timeout_s: float) -> str | None:
    """One publish attempt; None when acknowledged, else what refused it."""
    js = nc.jetstream(timeout=timeout_s)
    try:
        await js.publish(SUBJECT, msg_id.encode(), headers={"Nats-Msg-Id": msg_id})
    except asyncio.TimeoutError:
        return "timeout"
    except (NatsError, APIError) as exc:
        return type(exc).__name__
    return None


async def healthz_ok(node: NatsServer) -> bool:
    try:
        await node.monitor("/healthz?js-enabled-only=true")
    except MonitorUnavailable:
        return False
    return True
