"""A benchmark's device on MQTT (paho, its network loop in a thread): one reading out, wait
for the command back; or a flood of readings, counting the commands that come back.

paho never sets TCP_NODELAY, so every client here sets it in `on_socket_open`: without
it Nagle holds a small packet behind an unacknowledged one for ~40 ms, and the benchmark
would measure the kernel's delayed ACK instead of the software under test.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CONNECT_TIMEOUT_S = 10.0
# After a probe that got no answer, a late one must not be taken for the next probe's.
LATE_GRACE_S = 0.5


def no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """`on_socket_open`: TCP_NODELAY on paho's socket (see the module doc)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    return parts.hostname or "127.0.0.1", parts.port or 1883


@dataclass
class Flood:
    """What a flood did: readings sent, commands back, and when each came back."""

    sent: int
    received: int
    seconds: float
    """First publish → last command received (or the timeout)."""
    arrivals: list[float] = field(default_factory=list)
    """Arrival times of the commands, seconds after the first publish."""

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def per_second(self, bin_s: float = 0.25) -> list[tuple[float, float]]:
        """Commands/s in bins of `bin_s`, for a throughput-over-time plot."""
        if not self.arrivals:
            return []
        bins = [0] * (int(self.arrivals[-1] / bin_s) + 1)
        for t in self.arrivals:
            bins[int(t / bin_s)] += 1
        return [(i * bin_s, n / bin_s) for i, n in enumerate(bins)]


class MqttDevice:
    """Blocking API: call it from a worker thread (`asyncio.to_thread`), not from the loop."""

    def __init__(self, url: str, client_id: str, commands: Sequence[str], qos: int = 1) -> None:
        self._host, self._port = host_port(url)
        self._commands = list(commands)
        self.qos = qos
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self._client.on_socket_open = no_delay
        self._client.on_message = self._on_message
        self._ready = threading.Event()
        self._got = threading.Event()
        self._lock = threading.Lock()
        self._received = 0
        self._arrivals: list[float] | None = None
        self._last_ns = 0

    def open(self) -> MqttDevice:
        subscribed = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect(self._host, self._port, keepalive=60)
        self._client.loop_start()
        if not subscribed.wait(CONNECT_TIMEOUT_S):
            self.close()
            raise ConnectionError(f"MQTT {self._host}:{self._port}: no SUBACK in time")
        return self

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(topic, 1) for topic in self._commands])

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, _c: mqtt.Client, _u: Any, _msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter_ns()
        with self._lock:
            self._received += 1
            self._last_ns = now
            if self._arrivals is not None:
                self._arrivals.append(now / 1e9)
        self._got.set()

    def round_trips(
        self, topic: str, payloads: Sequence[bytes], timeout_s: float
    ) -> tuple[list[float], int]:
        """Publish each payload and wait for one command: (latencies in ms, unanswered)."""
        out: list[float] = []
        lost = 0
        for payload in payloads:
            self._got.clear()
            sent_ns = time.perf_counter_ns()
            self._client.publish(topic, payload, qos=self.qos)
            if self._got.wait(timeout_s):
                out.append((self._last_ns - sent_ns) / 1e6)
            else:
                lost += 1
                time.sleep(LATE_GRACE_S)
        return out, lost

    def flood(self, topic: str, payloads: Sequence[bytes], timeout_s: float, qos: int = 0) -> Flood:
        """Publish every payload as fast as paho takes them; wait until as many commands
        came back or the last one is `timeout_s` old."""
        with self._lock:
            self._received, self._arrivals = 0, []
        start = time.perf_counter()
        for payload in payloads:
            self._client.publish(topic, payload, qos=qos)
        while True:
            with self._lock:
                received, last = self._received, self._last_ns / 1e9
            if received >= len(payloads):
                break
            idle_since = max(last, start)
            if time.perf_counter() - idle_since > timeout_s:
                break
            self._got.clear()
            self._got.wait(0.05)
        with self._lock:
            arrivals, self._arrivals = self._arrivals or [], None
            received = self._received
        end = arrivals[-1] if arrivals else time.perf_counter()
        return Flood(len(payloads), received, end - start, [t - start for t in arrivals])
