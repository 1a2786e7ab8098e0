"""Hub + gateway leaf: the link, MQTT into NATS, JetStream in both domains, hub restarts."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import nats
import paho.mqtt.client as mqtt
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from shared import streams, subjects
from shared.compat import timeout
from shared.natsrun import LocalTopology

pytestmark = pytest.mark.usefixtures("no_nats_left")

WAIT_S = 10.0


def _resolve(future: asyncio.Future[object], value: object) -> None:
    if not future.done():
        future.set_result(value)


async def mqtt_publish(url: str, topic: str, payload: bytes, client_id: str) -> None:
    """Publish one QoS 1 message with paho-mqtt and return once the broker acknowledged it."""
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[object] = loop.create_future()
    published: asyncio.Future[object] = loop.create_future()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)

    # paho calls back on its network thread; hand results to the loop thread-safely.
    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        loop.call_soon_threadsafe(_resolve, connected, rc)

    def on_publish(_c: mqtt.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        loop.call_soon_threadsafe(_resolve, published, mid)

    client.on_connect = on_connect
    client.on_publish = on_publish
    parts = urlsplit(url)
    client.connect_async(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    try:
        async with timeout(WAIT_S):
            reason = await connected
            assert isinstance(reason, ReasonCode) and not reason.is_failure, reason
            info = client.publish(topic, payload, qos=1)
            assert await published == info.mid
    finally:
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)


async def _connect(url: str) -> NatsClient:
    return await nats.connect(url, allow_reconnect=False)


async def test_hub_and_leaf_are_linked(topology: LocalTopology) -> None:
    hub, leaf = topology.hub, topology.leaf
    assert (hub.domain, leaf.domain) == ("hub", "edge-gw1")
    assert leaf.mqtt_url is not None and leaf.leafnode_url is None
    leafz = await leaf.monitor("/leafz")
    assert leafz["leafs"][0]["name"] == "hub"
    assert leafz["leafs"][0]["account"] == "$G"
    assert await hub.leafnode_count() == 1


async def test_mqtt_publish_arrives_on_the_nats_subject(topology: LocalTopology) -> None:
    assert topology.leaf.mqtt_url is not None
    nc = await _connect(topology.leaf.client_url)
    try:
        got: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

        async def on_msg(msg: Msg) -> None:
            if not got.done():
                got.set_result(msg)

        await nc.subscribe("baton.d.dev1.r", cb=on_msg)
        await nc.flush()
        await mqtt_publish(topology.leaf.mqtt_url, "baton/d/dev1/r", b"21.5", "dev1")
        async with timeout(WAIT_S):
            msg = await got
    finally:
        await nc.close()
    assert (msg.subject, msg.data) == ("baton.d.dev1.r", b"21.5")


async def test_mqtt_reading_lands_in_the_leafs_uplink_stream(topology: LocalTopology) -> None:
    # The leaf's start created the gateway's UPLINK: no edge daemon has run, and a
    # reading the leaf acknowledges is stored all the same.
    assert topology.leaf.mqtt_url is not None
    nc = await _connect(topology.leaf.client_url)
    try:
        js = nc.jetstream(domain=topology.leaf.domain)
        await mqtt_publish(topology.leaf.mqtt_url, "baton/d/dev2/r", b"7", "dev2")
        # The PUBACK can come before the stream has stored the message; a consumer
        # waits for it instead of racing a direct get.
        sub = await js.pull_subscribe("baton.d.dev2.r", stream=subjects.UPLINK_STREAM)
        (msg,) = await sub.fetch(1, timeout=WAIT_S)
        await msg.ack()
    finally:
        await nc.close()
    assert msg.data == b"7"


async def test_a_leaf_restart_keeps_the_limits_the_daemon_set(topology: LocalTopology) -> None:
    nc = await _connect(topology.leaf.client_url)
    try:
        js = nc.jetstream(domain=topology.leaf.domain)
        small = streams.uplink_stream(topology.gateway_id, max_bytes=8192, when_full="refuse_new")
        await streams.ensure_stream(js, small)  # what `Uplink.start` does with edge.toml
    finally:
        await nc.close()
    await topology.leaf.restart()  # creates what is missing, changes nothing that exists
    nc = await _connect(topology.leaf.client_url)
    try:
        js = nc.jetstream(domain=topology.leaf.domain)
        config = (await js.stream_info(subjects.UPLINK_STREAM)).config
    finally:
        await nc.close()
    assert (config.max_bytes, config.discard) == (8192, small.discard)


async def test_leaf_client_publishes_to_a_hub_stream(topology: LocalTopology) -> None:
    leaf_nc = await _connect(topology.leaf.client_url)
    hub_nc = await _connect(topology.hub.client_url)
    try:
        js = leaf_nc.jetstream(domain="hub")
        await js.add_stream(name="UPLINK", subjects=["up.>"])
        ack = await js.publish("up.gw1", b"r1", headers={"Nats-Msg-Id": "gw1-1"})
        assert (ack.stream, ack.domain, ack.seq) == ("UPLINK", "hub", 1)
        info = await hub_nc.jetstream().stream_info("UPLINK")
    finally:
        await leaf_nc.close()
        await hub_nc.close()
    assert info.state.messages == 1


async def test_leaf_domain_stream_stays_on_the_leaf(topology: LocalTopology) -> None:
    nc = await _connect(topology.leaf.client_url)
    hub_nc = await _connect(topology.hub.client_url)
    try:
        js = nc.jetstream(domain=topology.leaf.domain)
        await js.add_stream(name="LOCAL", subjects=["local.>"])
        ack = await js.publish("local.x", b"v")
        assert (ack.stream, ack.domain) == ("LOCAL", "edge-gw1")
        # Without a domain a leaf client gets its own server's JetStream.
        assert (await nc.jetstream().account_info()).domain == "edge-gw1"
        hub_streams = await hub_nc.jetstream().streams_info()
    finally:
        await nc.close()
        await hub_nc.close()
    assert [s.config.name for s in hub_streams] == []


async def test_link_comes_back_after_the_hub_is_killed(topology: LocalTopology) -> None:
    await topology.hub.kill()
    await topology.leaf.wait_for_leafnodes(0)
    await topology.hub.start()
    await topology.wait_linked()
    nc = await _connect(topology.leaf.client_url)
    try:
        js = nc.jetstream(domain="hub")
        await js.add_stream(name="AFTER", subjects=["after.>"])
        assert (await js.publish("after.x", b"1")).domain == "hub"
    finally:
        await nc.close()
