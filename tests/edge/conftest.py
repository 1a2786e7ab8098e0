"""Fixtures for the edge tests.

edge_config      factory: an `EdgeConfig` with its state in tmp_path, HTTP on a free
                 port, uplink and downlink off unless asked (`edge_config(uplink=True)`)
daemon           factory: `await daemon(config=None, **parts)` starts an `EdgeDaemon`
                 in-process against the `topology` leaf; every one is closed after
                 the test, and must have closed cleanly
memory_daemon    factory: a daemon on in-memory source / sink / uplink, no broker
mqtt_device      factory: `await mqtt_device("pump1", url)` — a paho client that
                 publishes readings as a device and collects its commands
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.ingest.memory import MemorySink, MemorySource, MemoryUplink
from shared.codec import decode, encode
from shared.compat import timeout
from shared.messages import Command, Reading, now_ms
from shared.natsrun import LocalTopology

# A command crossing loopback takes milliseconds; this only bounds a broken test.
WAIT_S = 10.0

ConfigFactory = Callable[..., EdgeConfig]


@pytest.fixture
def edge_config(tmp_path: Path) -> ConfigFactory:
    def make(*, uplink: bool = False, downlink: bool = False, **fields: Any) -> EdgeConfig:
        data: dict[str, Any] = {
            "state_dir": tmp_path / "edge-state",
            "http": {"port": 0},
            "uplink": {"enabled": uplink},
            "downlink": {"enabled": downlink},
            "store": {"flush_interval_ms": 20},
        }
        data.update(fields)
        return EdgeConfig(**data)

    return make


DaemonFactory = Callable[..., Awaitable[EdgeDaemon]]


@pytest.fixture
async def daemon(
    topology: LocalTopology, edge_config: ConfigFactory
) -> AsyncIterator[DaemonFactory]:
    started: list[EdgeDaemon] = []

    async def start(config: EdgeConfig | None = None, **parts: Any) -> EdgeDaemon:
        cfg = config or edge_config(nats_url=topology.leaf.client_url)
        d = EdgeDaemon(cfg, **parts)
        await d.start()
        started.append(d)
        return d

    yield start
    for d in reversed(started):
        await d.aclose()
        assert not d.ready


class MemoryParts:
    def __init__(self) -> None:
        self.source = MemorySource()
        self.sink = MemorySink()
        self.uplink = MemoryUplink()

    def kwargs(self) -> dict[str, Any]:
        return {"source": self.source, "sink": self.sink, "uplink": self.uplink}


@pytest.fixture
async def memory_daemon(
    edge_config: ConfigFactory,
) -> AsyncIterator[Callable[..., Awaitable[tuple[EdgeDaemon, MemoryParts]]]]:
    started: list[EdgeDaemon] = []

    async def start(
        config: EdgeConfig | None = None, **kwargs: Any
    ) -> tuple[EdgeDaemon, MemoryParts]:
        parts = MemoryParts()
        cfg = config or edge_config(http={"enabled": False})
        d = EdgeDaemon(cfg, **parts.kwargs(), **kwargs)
        await d.start()
        started.append(d)
        return d, parts

    yield start
    for d in reversed(started):
        await d.aclose()


def reading(device: str, seq: int, **metrics: float) -> Reading:
    return Reading(device=device, seq=seq, ts_ms=now_ms() + seq, metrics=metrics)


class MqttDevice:
    """A device as the tests need it: publish readings, receive commands (QoS 1)."""

    def __init__(self, device: str, url: str) -> None:
        self.device = device
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 1883
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{device}")
        self._client.on_socket_open = _no_delay
        self.commands: asyncio.Queue[bytes] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    async def __aenter__(self) -> MqttDevice:
        connected = self._loop.create_future()
        subscribed = self._loop.create_future()
        self._client.on_connect = lambda *_: self._resolve(connected)
        self._client.on_subscribe = lambda *_: self._resolve(subscribed)
        self._client.on_message = lambda _c, _u, msg: self._loop.call_soon_threadsafe(
            self.commands.put_nowait, bytes(msg.payload)
        )
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        async with timeout(WAIT_S):
            await connected
            self._client.subscribe(f"baton/d/{self.device}/cmd", qos=1)
            await subscribed
        return self

    def _resolve(self, fut: asyncio.Future[None]) -> None:
        self._loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

    async def __aexit__(self, *exc: object) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def publish_raw(self, payload: bytes, topic: str | None = None) -> None:
        self._client.publish(topic or f"baton/d/{self.device}/r", payload, qos=1)

    def publish(self, seq: int, **metrics: float) -> None:
        self.publish_raw(encode(reading(self.device, seq, **metrics)))

    async def next_command(self) -> Command:
        async with timeout(WAIT_S):
            return decode(await self.commands.get(), Command)


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@pytest.fixture
async def mqtt_device() -> AsyncIterator[Callable[[str, str], Awaitable[MqttDevice]]]:
    opened: list[MqttDevice] = []

    async def open_device(device: str, url: str) -> MqttDevice:
        dev = await MqttDevice(device, url).__aenter__()
        opened.append(dev)
        return dev

    yield open_device
    for dev in reversed(opened):
        await dev.__aexit__(None, None, None)
