"""The uplink against a real hub + leaf (`topology` fixture, `sync_interval: always`).

Every check reads the hub's FLEET stream in stream order and compares, per device, the
sequence numbers there with the ones the leaf acknowledged: equal lists mean nothing
lost, nothing doubled, and per-device order kept.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import nats
import paho.mqtt.client as mqtt
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import APIError
from paho.mqtt.enums import CallbackAPIVersion

from edge.uplink import Uplink, UplinkConfig, routing
from edge.uplink.acks import LocalAcks, same_server
from edge.uplink.stats import UplinkCounters
from shared import codec, streams, subjects, trace
from shared.compat import TaskGroup, timeout
from shared.messages import CommandAck, Decision, Reading
from shared.natsrun import LocalTopology
from shared.natsrun.monitor import poll_until

GW = "gw1"
DEVICES = ("d0", "d1", "d2", "d3")
# Short timeouts so that an outage is noticed, and left, within a second.
FAST = UplinkConfig(batch=64, hub_ack_timeout_s=1.0, retry_backoff_max_s=0.3)
DEADLINE_S = 40.0


def reading(device: str, seq: int) -> bytes:
    return codec.encode(
        Reading(
            device=device, seq=seq, ts_ms=1_700_000_000_000 + seq, metrics={"t": 20.0 + seq % 7}
        )
    )


@pytest.fixture
async def leaf(topology: LocalTopology) -> AsyncIterator[Client]:
    """The daemon's connection: to the leaf."""
    nc = await nats.connect(topology.leaf.client_url)
    yield nc
    await nc.close()


async def ensure_hub_streams(topology: LocalTopology, leaf: Client) -> JetStreamContext:
    """Create the hub's streams; return the hub's JetStream as seen from the leaf
    connection (which, unlike a hub connection, outlives a hub restart)."""
    nc = await nats.connect(topology.hub.client_url)
    try:
        await streams.ensure_hub(nc.jetstream())
    finally:
        await nc.close()
    return leaf.jetstream(domain=subjects.HUB_DOMAIN)


@pytest.fixture
async def hub(topology: LocalTopology, leaf: Client) -> JetStreamContext:
    return await ensure_hub_streams(topology, leaf)


async def eventually(check: Callable[[], object], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Wait for a state only a server or a stats snapshot exposes, up to a deadline."""

    async def holds() -> bool:
        return bool(check())

    try:
        await poll_until(holds, timeout_s=timeout_s)
    except asyncio.TimeoutError:
        raise AssertionError(f"not seen in {timeout_s}s: {what}") from None


async def drained(uplink: Uplink) -> None:
    """Wait until the leaf store is empty (local acks are processed asynchronously)."""

    async def empty() -> bool:
        return await uplink.backlog() == (0, 0)

    try:
        await poll_until(empty, timeout_s=DEADLINE_S)
    except asyncio.TimeoutError:
        raise AssertionError(f"backlog left: {await uplink.backlog()}") from None


async def fleet_count(hub: JetStreamContext, kind: str) -> int:
    info = await hub.stream_info(subjects.FLEET_STREAM, subjects_filter=f"fleet.{GW}.{kind}.*")
    return sum((info.state.subjects or {}).values())


async def wait_fleet(hub: JetStreamContext, kind: str, count: int) -> None:
    async def stored() -> bool:
        return await fleet_count(hub, kind) >= count

    try:
        await poll_until(stored, timeout_s=DEADLINE_S)
    except asyncio.TimeoutError:
        seen = await fleet_count(hub, kind)
        raise AssertionError(f"hub FLEET has {seen} {kind} messages, wanted {count}") from None


async def fleet_messages(hub: JetStreamContext, kind: str) -> list[Msg]:
    """Everything in FLEET under `fleet.<gw>.<kind>.*`, in stream order."""
    expected = await fleet_count(hub, kind)
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30.0)
    sub = await hub.pull_subscribe(
        f"fleet.{GW}.{kind}.*", stream=subjects.FLEET_STREAM, config=config
    )
    msgs: list[Msg] = []
    while len(msgs) < expected:
        msgs += await sub.fetch(min(500, expected - len(msgs)), timeout=5)
    await sub.unsubscribe()
    return msgs


def per_device(msgs: list[Msg]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for msg in msgs:
        r = codec.decode(msg.data, Reading)
        seqs[r.device].append(r.seq)
    return dict(seqs)


class Producer:
    """Publishes readings for DEVICES into the leaf store, one round at a time, and
    records what the leaf acknowledged (its PubAck: stored, fsynced)."""

    def __init__(self, leaf: Client) -> None:
        self._js = leaf.jetstream(domain=subjects.gateway_domain(GW))
        self.acked: dict[str, list[int]] = {d: [] for d in DEVICES}
        self.count = 0
        self._progress = asyncio.Condition()

    async def run(self, stop: asyncio.Event) -> None:
        seq = 0
        while not stop.is_set():
            futures = [
                await self._js.publish_async(f"baton.d.{d}.r", reading(d, seq)) for d in DEVICES
            ]
            await asyncio.gather(*futures)
            for d in DEVICES:
                self.acked[d].append(seq)
            seq += 1
            self.count += len(DEVICES)
            async with self._progress:
                self._progress.notify_all()

    async def wait_for(self, count: int) -> None:
        async with timeout(DEADLINE_S), self._progress:
            await self._progress.wait_for(lambda: self.count >= count)


async def publish_backlog(leaf: Client, per_device_count: int) -> dict[str, list[int]]:
    """Fill the leaf UPLINK stream (pipelined) before any forwarder runs."""
    js = leaf.jetstream(domain=subjects.gateway_domain(GW))
    await streams.ensure_stream(js, streams.uplink_stream(GW))
    futures = [
        await js.publish_async(f"baton.d.{d}.r", reading(d, s))
        for s in range(per_device_count)
        for d in DEVICES
    ]
    await asyncio.gather(*futures)
    return {d: list(range(per_device_count)) for d in DEVICES}


# -- (1) MQTT in, hub out ------------------------------------------------------------


def mqtt_publish(url: str, device: str, payloads: list[bytes]) -> None:
    """A sensor: QoS 1 publishes on its own topic, each PUBACKed before returning."""
    parts = urlsplit(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device)

    def nodelay(_c: mqtt.Client, _u: object, sock: Any) -> None:
        # paho never sets it; without it every QoS 1 hop waits ~40 ms for delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client.on_socket_open = nodelay
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    try:
        infos = [client.publish(subjects.mqtt_reading(device), p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout=DEADLINE_S)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


async def test_mqtt_readings_reach_the_hub_once_and_in_order(
    topology: LocalTopology, leaf: Client, hub: JetStreamContext
) -> None:
    sent = {d: list(range(120)) for d in DEVICES}
    url = topology.leaf.mqtt_url or ""
    async with Uplink(leaf, GW, FAST) as uplink:
        await asyncio.gather(
            *(
                asyncio.to_thread(mqtt_publish, url, d, [reading(d, s) for s in seqs])
                for d, seqs in sent.items()
            )
        )
        await wait_fleet(hub, "r", 480)
        msgs = await fleet_messages(hub, "r")
        await eventually(lambda: uplink.stats().forwarded >= 480, "480 forwarded")
    assert per_device(msgs) == sent
    first = msgs[0]
    assert first.headers is not None
    assert first.headers[routing.GATEWAY] == GW
    r = codec.decode(first.data, Reading)
    assert first.headers[routing.MSG_ID] == subjects.msg_id(GW, r.device, "r", r.seq)
    assert (
        trace.TraceContext.parse(first.headers[routing.TRACEPARENT]).trace_id == r.traceparent[3:35]
    )


# -- (2) hub outage under load ---------------------------------------------------------


async def test_hub_outage_under_load_loses_and_doubles_nothing(
    topology: LocalTopology, leaf: Client, hub: JetStreamContext
) -> None:
    producer = Producer(leaf)
    stop = asyncio.Event()
    async with Uplink(leaf, GW, FAST) as uplink:
        async with TaskGroup() as tg:
            tg.create_task(producer.run(stop), name="producer")
            await wait_fleet(hub, "r", 200)
            await topology.hub.kill()
            # Ingest carries on and the backlog grows while the hub is away.
            await producer.wait_for(producer.count + 400)
            await eventually(lambda: not uplink.stats().hub_connected, "hub seen as down")
            assert (await uplink.backlog())[0] >= 200
            await topology.hub.start()
            await topology.wait_linked()
            await producer.wait_for(producer.count + 200)
            stop.set()
        total = producer.count
        await wait_fleet(hub, "r", total)
        await eventually(lambda: uplink.stats().forwarded >= total, f"{total} forwarded")
        await drained(uplink)
        assert uplink.stats().hub_connected
    assert per_device(await fleet_messages(hub, "r")) == producer.acked


# -- (3) forwarder killed mid-drain -----------------------------------------------------


async def test_forwarder_killed_mid_drain_resends_without_loss_or_duplicates(
    topology: LocalTopology, leaf: Client, hub: JetStreamContext
) -> None:
    sent = await publish_backlog(leaf, 300)
    # What a forwarder killed between the hub's PubAck and its local ack leaves behind:
    # the first messages already at the hub, still in the leaf store.
    for s in range(10):
        for d in DEVICES:
            msg_id = subjects.msg_id(GW, d, "r", s)
            await hub.publish(
                subjects.fleet(GW, "r", d), reading(d, s), headers={routing.MSG_ID: msg_id}
            )
    # Watch the hub's FLEET subjects: the signal to kill the forwarder mid-drain.
    watcher = await nats.connect(topology.hub.client_url)
    halfway, seen = asyncio.Event(), 0

    async def count(_msg: Msg) -> None:
        nonlocal seen
        seen += 1
        if seen == 400:
            halfway.set()

    await watcher.subscribe(f"fleet.{GW}.r.*", cb=count)
    await watcher.flush()
    try:
        first = Uplink(leaf, GW, FAST)
        await first.start()
        async with timeout(DEADLINE_S):
            await halfway.wait()
        await first.aclose()  # abruptly: no flush, batches half-way to the hub
    finally:
        await watcher.close()
    assert first.stats().duplicates >= 40  # the hub's dedupe absorbed the pre-sent ones
    assert await fleet_count(hub, "r") < 1200, "the first forwarder drained it all"
    async with Uplink(leaf, GW, FAST) as second:
        await wait_fleet(hub, "r", 1200)
        await eventually(lambda: second.stats().forwarded > 0, "second forwarder active")
    assert per_device(await fleet_messages(hub, "r")) == sent


async def test_leaf_restart_mid_drain_loses_and_doubles_nothing(
    topology: LocalTopology, leaf: Client, hub: JetStreamContext
) -> None:
    sent = await publish_backlog(leaf, 150)
    async with Uplink(leaf, GW, FAST) as uplink:
        await wait_fleet(hub, "r", 100)
        # systemd restarting the gateway's nats-server: the daemon's connection
        # reconnects by itself, and the open pulls died with the server.
        await topology.leaf.restart()
        await topology.wait_linked()
        await wait_fleet(hub, "r", 600)
        await drained(uplink)
    assert per_device(await fleet_messages(hub, "r")) == sent


async def test_acks_and_status_are_forwarded_and_bad_payloads_are_not(
    leaf: Client, hub: JetStreamContext
) -> None:
    js = leaf.jetstream(domain=subjects.gateway_domain(GW))
    ack = CommandAck(cmd_id="c-7", device="d1", ok=True)
    async with Uplink(leaf, GW, FAST) as uplink:
        await js.publish("baton.d.d1.r", b"\xc1 not msgpack")
        await js.publish("baton.d.d1.r", reading("d2", 0))  # d1 speaking as d2
        await js.publish("baton.d.d1.r", reading("d1", 0))
        await js.publish("baton.d.d1.ack", codec.encode(ack))
        await js.publish("baton.d.d1.ack", codec.encode(ack))  # the device's QoS 1 re-send
        await js.publish("baton.d.d1.status", b"offline")
        await wait_fleet(hub, "status", 1)
        await drained(uplink)
        assert uplink.stats().dropped_invalid == 2
    assert per_device(await fleet_messages(hub, "r")) == {"d1": [0]}
    acks = await fleet_messages(hub, "ack")
    assert [codec.decode(m.data, CommandAck) for m in acks] == [ack]
    (status,) = await fleet_messages(hub, "status")
    assert (status.subject, status.data) == (f"fleet.{GW}.status.d1", b"offline")


# -- (4) the daemon's own items ---------------------------------------------------------


async def test_submitted_decisions_arrive_at_fleet_dec_once(
    leaf: Client, hub: JetStreamContext
) -> None:
    decisions = [
        Decision(gw=GW, device="d1", source="rule", name="overheat", version="1", latency_us=40 + i)
        for i in range(20)
    ]
    async with Uplink(leaf, GW, FAST) as uplink:
        for d in decisions:
            uplink.submit(
                "dec", d.device, d.decision_id, codec.encode(d), traceparent=d.traceparent
            )
        again = decisions[3]  # the same key twice is one item
        uplink.submit("dec", again.device, again.decision_id, codec.encode(again))
        await uplink.flush()
        assert uplink.stats().submitted == 21
        await wait_fleet(hub, "dec", 20)
        await eventually(lambda: uplink.stats().forwarded == 20, "20 forwarded")
        await drained(uplink)
    msgs = await fleet_messages(hub, "dec")
    assert [codec.decode(m.data, Decision).decision_id for m in msgs] == [
        d.decision_id for d in decisions
    ]
    for msg, d in zip(msgs, decisions, strict=True):
        assert msg.subject == "fleet.gw1.dec.d1"
        assert msg.headers is not None
        assert msg.headers[routing.MSG_ID] == f"gw1/d1/dec/{d.decision_id}"
        assert msg.headers[routing.TRACEPARENT][3:35] == d.traceparent[3:35]
    assert uplink.stats().errors == 0


# -- (6) full-disk policy ---------------------------------------------------------------

TINY = 4096  # bytes: about twenty readings


async def test_full_store_drop_oldest_keeps_the_newest_and_counts_the_loss(
    topology: LocalTopology, leaf: Client
) -> None:
    cfg = FAST.model_copy(update={"max_bytes": TINY, "batch": 8})
    js = leaf.jetstream(domain=subjects.gateway_domain(GW))
    # No FLEET stream at the hub yet: the forwarder can only hold what it fetched.
    async with Uplink(leaf, GW, cfg) as uplink:
        for s in range(100):
            await js.publish("baton.d.d0.r", reading("d0", s))  # never refused
        state = (await js.stream_info(subjects.UPLINK_STREAM)).state
        assert state.bytes <= TINY
        kept = list(range(state.first_seq - 1, state.last_seq))  # reading seq = stream seq - 1
        assert 0 < len(kept) < 50
        hub = await ensure_hub_streams(topology, leaf)
        await wait_fleet(hub, "r", len(kept))
        await drained(uplink)
        got = per_device(await fleet_messages(hub, "r"))["d0"]
        # What the forwarder had been delivered before the oldest went (one batch held
        # for the hub, two more asked for ahead) is forwarded too.
        held = len(got) - len(kept)
        assert 0 <= held <= 3 * cfg.batch
        assert got == list(range(held)) + kept
        assert uplink.stats().dropped_full == 100 - len(got)


async def test_full_store_refuse_new_keeps_the_backlog_and_refuses_writes(
    topology: LocalTopology, leaf: Client
) -> None:
    cfg = FAST.model_copy(update={"max_bytes": TINY, "when_full": "refuse_new", "batch": 8})
    js = leaf.jetstream(domain=subjects.gateway_domain(GW))
    async with Uplink(leaf, GW, cfg) as uplink:
        accepted: list[int] = []
        for s in range(100):
            try:
                await js.publish("baton.d.d0.r", reading("d0", s))
            except APIError:
                continue
            accepted.append(s)
        assert 0 < len(accepted) < 50
        assert accepted == list(range(len(accepted)))  # the oldest are kept
        uplink.submit("ev", GW, "while-full", b"{}")
        await uplink.flush()
        assert uplink.stats().submit_failed == 1
        hub = await ensure_hub_streams(topology, leaf)
        await wait_fleet(hub, "r", len(accepted))
        await eventually(lambda: uplink.stats().forwarded == len(accepted), "all forwarded")
        assert uplink.stats().dropped_full == 0
    assert per_device(await fleet_messages(hub, "r")) == {"d0": accepted}


# -- (7) local acks: one purge per forwarded run, never on a leaf that came back -------


async def test_forwarded_runs_leave_the_leaf_by_purge_with_nothing_pending(
    leaf: Client, hub: JetStreamContext
) -> None:
    sent = await publish_backlog(leaf, 200)
    js = leaf.jetstream(domain=subjects.gateway_domain(GW))
    async with Uplink(leaf, GW, FAST) as uplink:
        await wait_fleet(hub, "r", 800)
        await drained(uplink)
        info = await js.consumer_info(subjects.UPLINK_STREAM, "forwarder")
        assert (info.num_ack_pending, info.num_redelivered) == (0, 0)
        assert uplink.stats().forwarded == 800
    assert per_device(await fleet_messages(hub, "r")) == sent


async def test_a_purge_never_reaches_a_leaf_that_restarted(
    topology: LocalTopology, leaf: Client
) -> None:
    # A leaf killed before it wrote its last messages comes back with a shorter stream
    # and gives their sequences to new ones: a purge computed before must not reach it.
    await publish_backlog(leaf, 5)
    acks = LocalAcks(same_server(leaf), f"$JS.{subjects.gateway_domain(GW)}.API",
                     subjects.UPLINK_STREAM, UplinkCounters())  # fmt: skip
    await acks.open()
    try:
        await topology.leaf.restart()
        await topology.wait_linked()
        await eventually(lambda: acks.broken, "the purge connection seen as lost")
        await acks.through(20)  # as if the hub had stored all of them before the restart
        await acks.retry()
    finally:
        await acks.aclose()
    js = leaf.jetstream(domain=subjects.gateway_domain(GW))

    async def stream_back() -> bool:
        try:
            return (await js.stream_info(subjects.UPLINK_STREAM)).state.messages == 20
        except (APIError, asyncio.TimeoutError):
            return False

    await poll_until(stream_back, timeout_s=DEADLINE_S)
