"""One MQTT connection (a paho-mqtt client) driven by the asyncio loop, carrying devices.

paho runs here without its own network thread: its socket callbacks register the socket
with the asyncio loop (`add_reader` / `add_writer`), so thousands of connections share one
thread. Only the blocking TCP connect runs in the default executor; every socket close
happens on the loop thread (paho closes before it reports a lost connection, and we ask
it to disconnect rather than closing behind its back), so a file descriptor is never
unregistered after it was reused.

A link behaves like device firmware: last will `offline` and retained `online` on the
status topic, a command subscription, reconnect with exponential backoff and jitter, and
while it is down (or the broker falls behind on acks) readings wait in each device's
bounded buffer, oldest dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import threading
from collections.abc import Callable
from functools import partial
from random import Random
from typing import Any, Final

from paho.mqtt.client import (
    Client,
    ConnectFlags,
    DisconnectFlags,
    MQTTMessage,
    MQTTv311,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from firmware_sim.broker import BrokerUrl
from firmware_sim.config import Network, PayloadKind
from firmware_sim.device import SimDevice
from firmware_sim.errors import BrokerUnreachable
from firmware_sim.sender import buffer_put
from firmware_sim.summary import Counters
from shared.compat import timeout
from shared.subjects import mqtt_ack, mqtt_command, mqtt_reading, mqtt_status

log = logging.getLogger(__name__)

CONNACK_TIMEOUT_S: Final = 10.0
CLOSE_TIMEOUT_S: Final = 5.0
# Unacknowledged QoS 1 readings per connection: above HIGH the link stops publishing
# (readings wait in the device buffers) until acks bring it under LOW. Also keeps paho's
# 16-bit message ids far from wrapping onto one still in flight.
HIGH_WATER: Final = 20_000
LOW_WATER: Final = 10_000
ONLINE: Final = b"online"
OFFLINE: Final = b"offline"


class State(enum.Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    UP = "up"
    CLOSING = "closing"
    CLOSED = "closed"


def _url_login(broker: BrokerUrl) -> tuple[str, str] | None:
    if broker.username is None:
        return None
    return broker.username, broker.password or ""


def backoff_delay(attempt: int, low: float, high: float, rng: Random) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random, so a
    reconnect storm spreads out but no device retries at once."""
    step = min(high, low * 2.0**attempt)
    return step / 2.0 + rng.uniform(0.0, step / 2.0)


class Link:
    """One broker connection for one device (firmware-like) or many (load mode)."""

    def __init__(
        self,
        client_id: str,
        devices: list[SimDevice],
        *,
        broker: BrokerUrl,
        network: Network,
        qos: int,
        counters: Counters,
        jitter: Random,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.client_id = client_id
        self.login = login or _url_login(broker)
        self.devices = devices
        self.broker = broker
        self.network = network
        self.qos = qos
        self.counters = counters
        self.state = State.DOWN
        self.congested = False
        self.outage_until = 0.0
        self._jitter = jitter
        self._pending: set[int] = set()  # mids of QoS 1 readings awaiting PUBACK
        self._topics = {d.id: mqtt_reading(d.id) for d in devices}
        self._by_command = {mqtt_command(d.id): d for d in devices}
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._connack: asyncio.Future[None] | None = None
        self._gone: asyncio.Event = asyncio.Event()  # set when the socket is closed
        self._drained: asyncio.Future[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._write_soon = False
        self._dialing: asyncio.Future[Any] | None = None  # a connect running in a thread
        self.client = self._make_client()
        for device in devices:
            device.sender = self

    def _make_client(self) -> Client:
        client = Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=MQTTv311)
        if self.login is not None:
            client.username_pw_set(*self.login)
        if len(self.devices) == 1:
            # MQTT 3.1.1 §3.1.2.5: one will per connection, so only a device with its own
            # connection can have the broker announce its death.
            status = mqtt_status(self.devices[0].id)
            client.will_set(status, OFFLINE, qos=1, retain=True)
        # 0 = no paho-side limit: paho rescans every in-flight message on each PUBACK
        # when a limit is set; HIGH_WATER bounds the window instead.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if self.qos:
            # Only at QoS 1: with a callback set paho builds MQTT 5 property objects for
            # every QoS 0 publish too, which costs more than the publish itself.
            client.on_publish = self._on_publish
        return client

    # --- sending (the device's Sender) -------------------------------------------

    def send(self, device: SimDevice, payload: bytes, bad: PayloadKind | None) -> None:
        if self.state is not State.UP or self.congested or device.buffer:
            buffer_put(device.buffer, (payload, bad), self.counters)
            return
        self._publish(device, payload, bad)

    def send_ack(self, device: SimDevice, payload: bytes) -> None:
        # QoS 1: paho keeps it across a reconnect, as firmware would keep its answer.
        self.client.publish(mqtt_ack(device.id), payload, qos=1)

    def _publish(self, device: SimDevice, payload: bytes, bad: PayloadKind | None) -> None:
        info = self.client.publish(self._topics[device.id], payload, qos=self.qos)
        if bad is not None:
            self.counters.count_bad(bad)
            return
        self.counters.sent += 1
        if self.qos:
            self._pending.add(info.mid)
            if len(self._pending) >= HIGH_WATER:
                self.congested = True

    def _flush(self) -> None:
        """Publish what the devices buffered, oldest first, until congested again."""
        if self.state is not State.UP:
            return
        for device in self.devices:
            buffer = device.buffer
            while buffer and not self.congested:
                payload, bad = buffer.popleft()
                self._publish(device, payload, bad)
            if self.congested:
                return
        self._check_drained()

    # --- paho callbacks (all on the loop thread, except socket open from connect) --

    def _on_socket_open(self, client: Client, userdata: Any, sock: Any) -> None:
        # paho never sets TCP_NODELAY: without it each QoS 1 hop waits ~40 ms on Nagle
        # and delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._in_loop(self._opened, sock)

    def _opened(self, sock: Any) -> None:
        if sock.fileno() >= 0:  # closed meanwhile: nothing to watch
            self._gone.clear()
            self._loop.add_reader(sock, self._readable)

    def _on_socket_close(self, client: Client, userdata: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._gone.set()

    def _on_register_write(self, client: Client, userdata: Any, sock: Any) -> None:
        # Not an epoll registration per publish: one write per connection per loop turn,
        # and a writer callback only when the kernel buffer is full (see `_write_now`).
        self._in_loop(self._schedule_write)

    def _on_unregister_write(self, client: Client, userdata: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _in_loop(self, call: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._thread:
            call(*args)
        else:
            self._loop.call_soon_threadsafe(call, *args)

    def _schedule_write(self) -> None:
        if not self._write_soon:
            self._write_soon = True
            self._loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        self._write_soon = False
        client = self.client
        client.loop_write()
        sock = client.socket()
        if client.want_write() and sock is not None and sock.fileno() >= 0:
            self._loop.add_writer(sock, self._writable)  # the rest when it drains

    def _readable(self) -> None:
        self.client.loop_read()

    def _writable(self) -> None:
        self.client.loop_write()

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        waiter = self._connack
        if self.state in (State.CLOSING, State.CLOSED):
            return  # a connect that finished while we were closing: aclose hangs it up
        if rc.is_failure:
            if waiter is not None and not waiter.done():
                waiter.set_exception(BrokerUnreachable(*self.broker.address, f"refused: {rc}"))
            return
        self.state = State.UP
        topics: list[tuple[str, int]] = [(t, self.network.command_qos) for t in self._by_command]
        client.subscribe(topics)
        for device in self.devices:
            client.publish(mqtt_status(device.id), ONLINE, qos=1, retain=True)
        # After paho re-sends its unacknowledged messages (it does so once this returns),
        # so buffered readings follow the older ones.
        self._loop.call_soon(self._flush)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        waiter = self._connack
        if waiter is not None and not waiter.done():
            reason = "connection closed before CONNACK"
            waiter.set_exception(BrokerUnreachable(*self.broker.address, reason))
        if self.state in (State.CLOSING, State.CLOSED):
            return
        was_up = self.state is State.UP
        self.state = State.DOWN
        if was_up:
            log.info("%s: connection lost (%s); reconnecting", self.client_id, rc)
            self._start_reconnect()

    def _on_publish(
        self, client: Client, userdata: Any, mid: int, rc: ReasonCode, props: Properties
    ) -> None:
        pending = self._pending
        if mid in pending:
            pending.discard(mid)
            self.counters.acked += 1
            if self.congested and len(pending) <= LOW_WATER:
                self.congested = False
                self._loop.call_soon(self._flush)
            elif not pending:
                self._check_drained()

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        device = self._by_command.get(message.topic)
        if device is None:
            return
        try:
            device.command(bytes(message.payload))
        except Exception:  # one bad command must not stop the connection's loop
            log.exception("%s: command handler failed", device.id)

    # --- connecting -----------------------------------------------------------------

    async def open(self) -> None:
        """First connection; BrokerUnreachable if the broker refuses or never answers."""
        host, port = self.broker.address
        await self._connect(partial(self.client.connect, host, port, self.network.keepalive_s))

    async def _connect(self, call: Callable[[], Any]) -> None:
        self.state = State.CONNECTING
        self._connack = self._loop.create_future()
        # The TCP connect blocks (up to paho's connect_timeout): keep it off the loop.
        self._dialing = self._loop.run_in_executor(None, call)
        try:
            await self._dialing
        except OSError as exc:
            self.state = State.DOWN
            raise BrokerUnreachable(*self.broker.address, exc.strerror or str(exc)) from exc
        try:
            async with timeout(CONNACK_TIMEOUT_S):
                await self._connack
        except asyncio.TimeoutError as exc:
            await self._hang_up()
            self.state = State.DOWN
            reason = f"no CONNACK within {CONNACK_TIMEOUT_S:.0f} s (is this an MQTT port?)"
            raise BrokerUnreachable(*self.broker.address, reason) from exc
        except BrokerUnreachable:
            self.state = State.DOWN
            raise

    def _start_reconnect(self) -> None:
        if self._reconnect is None or self._reconnect.done():
            name = f"sim-reconnect-{self.client_id}"
            self._reconnect = self._loop.create_task(self._reconnect_loop(), name=name)

    async def _reconnect_loop(self) -> None:
        net, attempt = self.network, 0
        while self.state is State.DOWN:
            delay = backoff_delay(attempt, net.backoff_min_s, net.backoff_max_s, self._jitter)
            attempt += 1
            # Pacing a retry, not waiting for an event: the backoff is the point.
            await asyncio.sleep(max(delay, self.outage_until - self._loop.time()))
            if self._loop.time() < self.outage_until:
                continue
            try:
                await self._connect(self.client.reconnect)
            except BrokerUnreachable as exc:
                log.debug("%s: reconnect attempt %d failed: %s", self.client_id, attempt, exc)
                continue
            self.counters.reconnects += 1

    # --- faults ------------------------------------------------------------------

    def drop(self, outage_s: float = 0.0) -> None:
        """Lose the connection as a network fault would (the broker sends the will)."""
        self.outage_until = max(self.outage_until, self._loop.time() + outage_s)
        sock = self.client.socket()
        if self.state is State.UP and isinstance(sock, socket.socket):
            # The reader sees end-of-file and paho reports the loss like a real one.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # --- closing -----------------------------------------------------------------

    def misc(self) -> None:
        """Keepalive (PINGREQ) and ping timeout; called about once a second."""
        if self.state is State.UP:
            self.client.loop_misc()

    def _check_drained(self) -> None:
        waiter = self._drained
        if waiter is not None and not waiter.done() and self.idle:
            waiter.set_result(None)

    @property
    def idle(self) -> bool:
        """Nothing buffered and nothing awaiting an ack."""
        return not self._pending and not any(d.buffer for d in self.devices)

    async def drain(self) -> None:
        """Wait until every buffered reading is published and every QoS 1 one acked."""
        if self.idle:
            return
        self._drained = self._loop.create_future()
        await self._drained

    async def aclose(self) -> None:
        """Announce `offline` (a clean disconnect sends no will), disconnect, close.
        Safe to call twice."""
        if self.state in (State.CLOSING, State.CLOSED):
            return
        was_up, self.state = self.state is State.UP, State.CLOSING
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        if self._dialing is not None:
            # Cancelling the await does not stop the thread: let it finish, then the
            # socket it may have opened is closed below instead of leaking.
            await asyncio.wait([self._dialing])
        if was_up:
            for device in self.devices:
                self.client.publish(mqtt_status(device.id), OFFLINE, qos=1, retain=True)
        await self._hang_up()
        self.state = State.CLOSED

    async def _hang_up(self) -> None:
        """DISCONNECT, then wait for paho to close the socket once it is written."""
        if self.client.socket() is None:
            return
        self._gone.clear()  # set again when paho closes the socket it has now
        self.client.disconnect()
        try:
            async with timeout(CLOSE_TIMEOUT_S):
                await self._gone.wait()
        except asyncio.TimeoutError:
            log.warning("%s: broker did not take the DISCONNECT; closing", self.client_id)
            self._force_close()

    def _force_close(self) -> None:
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            self._on_socket_close(self.client, None, sock)
            sock.close()
