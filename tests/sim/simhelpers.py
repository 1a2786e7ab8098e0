"""An MQTT probe for the simulator tests: a paho subscriber feeding an asyncio queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from firmware_sim.broker import BrokerUrl
from paho.mqtt.client import Client, MQTTMessage, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion

from shared.compat import timeout

WAIT_S = 15.0  # generous: the test machine may be busy; a pass never waits this long


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Probe:
    """A paho client on its own network thread whose messages land in an asyncio queue."""

    def __init__(self, url: str, client_id: str) -> None:
        self.broker = BrokerUrl.parse(url)
        self.messages: asyncio.Queue[Received] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTv311)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_future
        self._client.on_publish = self._on_future
        self._client.on_connect = self._on_connect
        self._futures: dict[int, asyncio.Future[None]] = {}
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._lock = threading.Lock()

    def _on_connect(self, client: Client, userdata: Any, *args: Any) -> None:
        self._loop.call_soon_threadsafe(_resolve, self._connected)

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        item = Received(msg.topic, bytes(msg.payload), bool(msg.retain))
        self._loop.call_soon_threadsafe(self.messages.put_nowait, item)

    def _on_future(self, client: Client, userdata: Any, mid: int, *args: Any) -> None:
        with self._lock:
            future = self._futures.pop(mid, None)
        if future is not None:
            self._loop.call_soon_threadsafe(_resolve, future)

    async def _tracked(self, call: Callable[[], tuple[int, int | None]]) -> None:
        future = self._loop.create_future()
        with self._lock:  # the ack may arrive before call() returns its mid to us
            rc, mid = call()
            assert rc == 0 and mid is not None, f"paho refused: rc={rc}"
            self._futures[mid] = future
        async with timeout(WAIT_S):
            await future

    async def start(self, *topics: str) -> Probe:
        await asyncio.to_thread(self._client.connect, *self.broker.address)
        self._client.loop_start()
        async with timeout(WAIT_S):
            await self._connected
        if topics:
            await self._tracked(lambda: self._client.subscribe([(t, 1) for t in topics]))
        return self

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""

        def send() -> tuple[int, int | None]:
            info = self._client.publish(topic, payload, qos=1)
            return info.rc, info.mid

        await self._tracked(send)

    async def next(self, within: float = WAIT_S) -> Received:
        async with timeout(within):
            return await self.messages.get()

    async def close(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


ProbeFactory = Callable[..., Awaitable[Probe]]
