"""Readings from any MQTT 3.1.1 broker (mosquitto, the leaf's listener) through paho-mqtt.

paho runs its network loop on its own thread; each message crosses into asyncio with
`loop.call_soon_threadsafe` onto a bounded queue that one named task drains in order.
The session is persistent (clean_session=0, a fixed client id) with QoS 1, so a broker
keeps the readings published while the daemon restarts (MQTT 3.1.1 §3.1.2.4). Commands
go back on the same connection to `baton/d/<device>/cmd` at QoS 1, and the devices' acks
(`baton/d/<device>/ack`) come in on it like readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.ingest.ports import Deliver
from shared import subjects
from shared.compat import timeout
from shared.errors import TransportError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
KEEPALIVE_S = 30
# Readings waiting for the event loop; past this the oldest is kept and new ones are
# dropped (counted): the broker-side session is the durable buffer, not our memory.
QUEUE_MAX = 64 * 1024
# On stop, readings already received are still handled for up to this long.
DRAIN_TIMEOUT_S = 5.0
_Item = tuple[str, bytes, int]


class MqttSource:
    """`ReadingSource` and `CommandSink` over one paho client."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 1883
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_socket_open = _no_delay
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_MAX)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._is_connected = False
        self.dropped = 0

    async def start(self, deliver: Deliver) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._client.connect_async(self._host, self._port, keepalive=KEEPALIVE_S)
        self._client.loop_start()
        try:
            async with timeout(CONNECT_TIMEOUT_S):
                await self._connected
        except (asyncio.TimeoutError, TransportError) as exc:
            await self.stop()
            raise TransportError(f"MQTT broker {self._host}:{self._port}: {exc!r}") from exc
        self._pump = asyncio.create_task(self._run(deliver), name="edge-mqtt-pump")

    async def _run(self, deliver: Deliver) -> None:
        while True:
            topic, payload, received_ns = await self._queue.get()
            try:
                await deliver(topic, payload, received_ns)
            except Exception:  # the next reading must still be handled
                log.exception("reading from %s not handled", topic)
            finally:
                self._queue.task_done()

    async def stop(self) -> None:
        """Disconnect (no new readings), handle what was queued, stop paho's thread."""
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        pump, self._pump = self._pump, None
        if pump is not None:
            await self._finish(pump)

    async def _finish(self, pump: asyncio.Task[None]) -> None:
        try:
            async with timeout(DRAIN_TIMEOUT_S):
                await self._queue.join()
        except asyncio.TimeoutError:
            log.warning("%d queued MQTT readings not handled", self._queue.qsize())
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def send(self, device: str, payload: bytes) -> None:
        # paho's publish only queues the packet (thread-safe); its loop thread writes it.
        self._client.publish(subjects.mqtt_command(device), payload, qos=1)

    @property
    def connected(self) -> bool:
        return self._is_connected

    # -- paho thread ------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._call(self._set_connected, TransportError(f"refused: {reason}"))
            return
        client.subscribe([(subjects.MQTT_READINGS_ALL, 1), (subjects.MQTT_ACKS_ALL, 1)])
        self._is_connected = True
        self._call(self._set_connected, None)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._is_connected = False
        log.warning("MQTT broker disconnected: %s; paho reconnects", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._call(self._enqueue, (msg.topic, bytes(msg.payload), time.perf_counter_ns()))

    def _call(self, fn: Any, arg: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, arg)

    # -- event loop -------------------------------------------------------------------

    def _set_connected(self, error: TransportError | None) -> None:
        fut = self._connected
        if fut is None or fut.done():
            return
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)

    def _enqueue(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    # paho never sets TCP_NODELAY; without it Nagle holds each small QoS 1 packet until
    # the peer's delayed ACK, ~40 ms per hop on Linux.
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
