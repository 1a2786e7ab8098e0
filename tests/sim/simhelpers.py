"""Helpers for the simulator tests: a mosquitto runner and an MQTT probe (a paho
subscriber feeding an asyncio queue)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from firmware_sim.broker import BrokerUrl
from paho.mqtt.client import Client, MQTTMessage, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion

from shared.compat import timeout
from shared.natsrun import free_port

WAIT_S = 15.0  # generous: the test machine may be busy; a pass never waits this long
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
READY_TIMEOUT_S = 10.0


def _drain(stream: Any, lines: queue.Queue[str | None]) -> None:
    """Read the broker's log until it exits, so its pipe can never fill and block it."""
    for line in stream:
        lines.put(line)
    lines.put(None)  # end of file: the broker exited


@contextlib.contextmanager
def run_mosquitto(folder: Path, extra: str = "", port: int | None = None) -> Iterator[str]:
    """A mosquitto broker on a free port, ready when its log says it is running."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; CI installs it)")
    port = port or free_port()
    conf = folder / "mosquitto.conf"
    # As root, mosquitto drops to user `mosquitto`, who cannot read pytest's private tmp dirs.
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\npersistence false\n{user}"
        "log_dest stderr\nlog_type error\nlog_type warning\nlog_type information\n"
        + (extra or "allow_anonymous true\n")
    )
    lines: queue.Queue[str | None] = queue.Queue()
    with subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        reader = threading.Thread(target=_drain, args=(proc.stderr, lines), daemon=True)
        reader.start()
        try:
            _wait_running(lines)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            reader.join(timeout=10)


def _wait_running(lines: queue.Queue[str | None]) -> None:
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            line = None
        if line is None:
            pytest.fail("mosquitto did not start:\n" + "".join(seen))
        if " running" in line:
            return
        seen.append(line)


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
