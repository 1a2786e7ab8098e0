"""Batch publishing (edge/uplink/wire.py, pipeline.py) against a real nats-server: what a
subscriber and a JetStream stream get is what nats-py's own publish() would give them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from nats.js.errors import NoStreamResponseError

from edge.uplink.pipeline import Outgoing, Publisher
from edge.uplink.wire import BatchWriter, Publish, header_block
from shared.compat import timeout
from shared.natsrun import NatsServer

WAIT_S = 10.0


@pytest.fixture
async def nc(hub: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(hub.client_url)
    yield client
    await client.close()


def test_header_values_cannot_end_their_line() -> None:
    block = header_block({"Nats-Msg-Id": "gw1/d1/ack/c\r\nX-Evil: 1", "traceparent": " t "})
    assert block == b"NATS/1.0\r\nNats-Msg-Id: gw1/d1/ack/c  X-Evil: 1\r\ntraceparent: t\r\n\r\n"
    assert header_block({"A": "b"}) == b"NATS/1.0\r\nA: b\r\n\r\n"


async def _received(nc: Client, batch: list[Publish], writer: BatchWriter) -> list[Msg]:
    got: list[Msg] = []
    all_in = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        got.append(msg)
        if len(got) == len(batch):
            all_in.set()

    sub = await nc.subscribe("w.>", cb=on_msg)
    try:
        assert await writer.write(batch) == (len(batch), None)
        async with timeout(WAIT_S):
            await all_in.wait()
    finally:
        await sub.unsubscribe()
    return got


@pytest.mark.parametrize("fast", [True, False], ids=["frames", "publish"])
async def test_a_batch_arrives_whole_and_in_order(nc: Client, fast: bool) -> None:
    writer = BatchWriter(nc)
    assert writer.fast  # this nats-py has the buffer the frames go to
    writer.fast = fast
    batch: list[Publish] = [
        (f"w.{i % 3}", f"r.{i}", {"Nats-Msg-Id": f"id-{i}", "Baton-Hlc": str(i)}, b"x" * i)
        for i in range(300)
    ]
    got = await _received(nc, batch, writer)
    assert [(m.subject, m.reply, m.headers, m.data) for m in got] == [
        (subject, reply, headers, payload) for subject, reply, headers, payload in batch
    ]


async def test_a_message_over_max_payload_stops_the_batch_there(nc: Client) -> None:
    writer = BatchWriter(nc)
    big = b"x" * (nc.max_payload + 1)
    batch: list[Publish] = [("w.a", "r", {"A": "1"}, b"ok"), ("w.a", "r", {"A": "2"}, big)]
    sent, err = await writer.write([*batch, batch[0]])
    assert (sent, type(err).__name__) == (1, "MaxPayloadError")


async def test_a_closed_connection_sends_nothing(hub: NatsServer) -> None:
    client = await nats.connect(hub.client_url)
    await client.close()
    sent, err = await BatchWriter(client).write([("w.a", "r", {"A": "1"}, b"")])
    assert (sent, type(err).__name__) == (0, "ConnectionClosedError")


async def test_pubacks_settle_each_message_of_each_flight(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="S", subjects=["s.>"]))
    publisher = Publisher(nc)
    await publisher.start()
    try:
        batch = [Outgoing(f"s.{i}", b"p", {"Nats-Msg-Id": f"m{i}"}) for i in range(50)]
        first = await publisher.send(batch, 5.0)
        second = await publisher.send(batch[:10], 5.0)  # re-sent: absorbed by the dedupe
        assert await publisher.settle(first) == [None] * 50
        assert await publisher.settle(second) == [None] * 10
        assert publisher.duplicates == 10
        nowhere = await publisher.publish_all([Outgoing("none.x", b"p", {"A": "1"})], 5.0)
        assert [type(out) for out in nowhere] == [NoStreamResponseError]
        assert (await js.stream_info("S")).state.messages == 50
    finally:
        await publisher.aclose()
