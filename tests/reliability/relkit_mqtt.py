"""A bare MQTT 3.1.1 client on asyncio streams, for hostile-client tests.

paho-mqtt hides what an attacker controls (the client id of another device, a will on
someone else's topic, a retained message, a connection dropped without DISCONNECT so the
will fires). This client writes each packet as the spec lays it out (MQTT 3.1.1 §3) and
reads the server's answers as they come; nothing is retried or hidden.

    async with RawMqtt.connect(port, client_id="dev-b", user="dev-a", password=pw,
                               will=("baton/d/dev-b/status", b"offline", True)) as c:
        c.connack                      # return code, §3.2.2.3 (0 accepted)
        await c.subscribe("baton/d/dev-b/cmd")   # -> [0x80] refused, §3.9.3
        await c.publish("baton/d/dev-b/r", b"x", qos=1, retain=True)
        await c.next_publish()         # (topic, payload, retain)
        c.drop()                       # close the socket without DISCONNECT (§3.1.2.5)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.compat import timeout

WAIT_S = 10.0
KEEPALIVE_S = 30

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
SUBACK_FAILURE = 0x80


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class ConnectionDropped(Exception):
    """The server closed the connection."""


class RawMqtt:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[tuple[int, int], asyncio.Future[bytes]] = {}
        self.publishes: asyncio.Queue[Received] = asyncio.Queue()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connack: int | None = None
        self.session_present = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        port: int,
        *,
        client_id: str,
        user: str | None = None,
        password: str | None = None,
        clean: bool = True,
        will: tuple[str, bytes, bool] | None = None,
    ) -> AsyncIterator[RawMqtt]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        try:
            await client._hello(client_id, user, password, clean, will)
            yield client
        finally:
            await client.aclose()

    async def _hello(
        self,
        client_id: str,
        user: str | None,
        password: str | None,
        clean: bool,
        will: tuple[str, bytes, bool] | None,
    ) -> None:
        flags = 0x02 if clean else 0
        payload = _str(client_id)
        if will is not None:
            topic, message, retain = will
            flags |= 0x04 | (1 << 3) | (0x20 if retain else 0)  # will QoS 1
            payload += _str(topic) + _str(message)
        if user is not None:
            flags |= 0x80
            payload += _str(user)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", KEEPALIVE_S) + payload
        self._writer.write(_packet(CONNECT, 0, body))
        await self._writer.drain()
        async with timeout(WAIT_S):
            kind, _, data = await self._read_packet()
        assert kind == CONNACK, f"expected CONNACK, got packet type {kind}"
        self.session_present, self.connack = bool(data[0] & 1), data[1]
        if self.connack == 0:
            self._task = asyncio.create_task(self._read_loop(), name="raw-mqtt-reader")

    async def subscribe(self, topic: str, qos: int = 1) -> list[int]:
        """SUBSCRIBE one filter; the SUBACK return codes (0x80: refused, §3.9.3)."""
        pid = next(self._ids)
        fut = self._expect(SUBACK, pid)
        body = struct.pack("!H", pid) + _str(topic) + bytes([qos])
        await self._send(_packet(SUBSCRIBE, 0x02, body))
        async with timeout(WAIT_S):
            return list(await fut)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """PUBLISH; at QoS 1 returns once PUBACK came (the broker took it, §4.3.2)."""
        flags = qos << 1 | (1 if retain else 0)
        if qos == 0:
            await self._send(_packet(PUBLISH, flags, _str(topic) + payload))
            return
        pid = next(self._ids)
        fut = self._expect(PUBACK, pid)
        await self._send(_packet(PUBLISH, flags, _str(topic) + struct.pack("!H", pid) + payload))
        async with timeout(WAIT_S):
            await fut

    async def ping(self) -> None:
        """PINGREQ/PINGRESP: everything this connection sent before was processed."""
        fut = self._expect(PINGRESP, 0)
        await self._send(_packet(PINGREQ, 0, b""))
        async with timeout(WAIT_S):
            await fut

    async def next_publish(self) -> Received:
        async with timeout(WAIT_S):
            return await self.publishes.get()

    def drop(self) -> None:
        """Close the TCP connection without DISCONNECT: the server must send the will."""
        self._writer.transport.abort()

    async def disconnect(self) -> None:
        with contextlib.suppress(OSError):
            await self._send(_packet(DISCONNECT, 0, b""))
        await self.aclose()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        if not self.closed.done():
            self.closed.set_result(None)

    # -- internals -----------------------------------------------------------------------

    def _expect(self, kind: int, pid: int) -> asyncio.Future[bytes]:
        if self.closed.done():
            raise ConnectionDropped()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[(kind, pid)] = fut
        return fut

    async def _send(self, packet: bytes) -> None:
        self._writer.write(packet)
        await self._writer.drain()

    async def _read_packet(self) -> tuple[int, int, bytes]:
        first = (await self._reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first >> 4, first & 0x0F, await self._reader.readexactly(length)

    async def _read_loop(self) -> None:
        try:
            while True:
                kind, flags, data = await self._read_packet()
                self._dispatch(kind, flags, data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionDropped())
            if not self.closed.done():
                self.closed.set_result(None)

    def _dispatch(self, kind: int, flags: int, data: bytes) -> None:
        if kind == PUBLISH:
            (size,) = struct.unpack("!H", data[:2])
            topic = data[2 : 2 + size].decode()
            rest = data[2 + size :]
            qos = flags >> 1 & 3
            if qos:
                packet_id, rest = rest[:2], rest[2:]
                self._writer.write(_packet(PUBACK, 0, packet_id))
            self.publishes.put_nowait(Received(topic, rest, bool(flags & 1)))
            return
        pid: int = struct.unpack("!H", data[:2])[0] if kind in (PUBACK, SUBACK) else 0
        fut = self._pending.pop((kind, pid), None)
        if fut is not None and not fut.done():
            fut.set_result(data[2:] if kind == SUBACK else data)
