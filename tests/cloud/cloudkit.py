"""Helpers of the cloud tests (imported by `conftest.py` and the test modules).

FleetPublisher   publishes on FLEET the way `edge.uplink.forwarder` does
applied(...)     a device's readings are in its twin and in the read model
metric(...)      one sample of a replica's Prometheus registry
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from nats.js import JetStreamContext
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import CloudConfig
from cloud.orchestrator import Orchestrator
from shared import codec, hlc, subjects, trace
from shared.compat import timeout
from shared.messages import Command, CommandAck, Message, Reading, ReportedState, now_ms

GW = "gw1"
# Loopback round trips take milliseconds; this only bounds a broken test.
WAIT_S = 15.0

ConfigFactory = Callable[..., CloudConfig]
OrchestratorFactory = Callable[..., Awaitable[Orchestrator]]


class FleetPublisher:
    """Publishes FLEET messages as `edge.uplink.forwarder` does, with knobs for faults."""

    def __init__(self, js: JetStreamContext, gw: str = GW) -> None:
        self.js = js
        self.gw = gw
        self.clock = hlc.HybridLogicalClock()

    async def publish(
        self,
        kind: str,
        device: str,
        payload: bytes,
        key: str | int,
        *,
        stamp: int | None = None,
        msg_id: str | None = None,
        gw: str | None = None,
    ) -> int:
        """Publish one message; returns its HLC stamp."""
        gw = gw or self.gw
        stamp = self.clock.now() if stamp is None else stamp
        headers = {
            "Nats-Msg-Id": msg_id or subjects.msg_id(gw, device, kind, key),  # type: ignore[arg-type]
            "Baton-Gateway": gw,
            "Baton-Hlc": str(stamp),
            trace.HEADER: trace.new_traceparent(),
        }
        await self.js.publish(subjects.fleet(gw, kind, device), payload, headers=headers)
        return stamp

    async def reading(self, device: str, seq: int, **knobs: Any) -> int:
        value = knobs.pop("value", 20.0 + seq % 10)
        return await self.publish("r", device, encode_reading(device, seq, value), seq, **knobs)

    async def report(self, device: str, applied_version: int, state: dict[str, Any]) -> int:
        msg: Message = ReportedState(
            device=device, gw=self.gw, applied_version=applied_version, state=state
        )
        return await self.publish("twin", device, codec.encode(msg), f"v{applied_version}")

    async def status(self, device: str, online: bool, key: int) -> int:
        return await self.publish("status", device, b"online" if online else b"offline", key)


def encode_reading(device: str, seq: int, value: float = 20.0) -> bytes:
    return codec.encode(
        Reading(device=device, seq=seq, ts_ms=1_700_000_000_000 + seq, metrics={"t": value})
    )


def applied(orch: Orchestrator, device: str, count: int, gw: str = GW) -> bool:
    """`count` readings of `device` are in its twin and in this replica's read model."""
    twin = orch.readmodel.twin(gw, device)
    return (
        twin is not None
        and twin.readings == count
        and orch.readmodel.reading_count(gw, device) == count
    )


def metric(orch: Orchestrator, name: str, **labels: str) -> float:
    return orch.metrics.registry.get_sample_value(name, labels) or 0.0


class MqttDevice:
    """A device publishing readings over MQTT 3.1.1 (QoS 1), as firmware does."""

    def __init__(self, device: str, url: str) -> None:
        parts = urlsplit(url)
        self.device = device
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 1883
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{device}")
        self._loop = asyncio.get_running_loop()
        self._acked: dict[int, asyncio.Future[None]] = {}

    async def __aenter__(self) -> MqttDevice:
        connected: asyncio.Future[None] = self._loop.create_future()
        self._client.on_connect = lambda *_: self._resolve(connected)
        self._client.on_publish = lambda _c, _u, mid, *_: self._on_puback(mid)
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        async with timeout(WAIT_S):
            await connected
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def _resolve(self, fut: asyncio.Future[None]) -> None:
        self._loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

    def _on_puback(self, mid: int) -> None:
        def settle() -> None:
            fut = self._acked.setdefault(mid, self._loop.create_future())
            if not fut.done():
                fut.set_result(None)

        self._loop.call_soon_threadsafe(settle)

    async def answer_commands(self) -> None:
        """From now on acknowledge every command with ok, as firmware that applied it does."""
        subscribed: asyncio.Future[None] = self._loop.create_future()
        self._client.on_subscribe = lambda *_: self._resolve(subscribed)
        self._client.on_message = self._on_command
        self._client.subscribe(f"baton/d/{self.device}/cmd", qos=1)
        async with timeout(WAIT_S):
            await subscribed

    def _on_command(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        # paho's network thread: publishing from here is what paho supports.
        cmd = codec.decode(bytes(msg.payload), Command)
        ack = CommandAck(cmd_id=cmd.cmd_id, device=self.device, ok=True)
        self._client.publish(f"baton/d/{self.device}/ack", codec.encode(ack), qos=1)

    async def publish(self, seq: int, **metrics: float) -> None:
        """Publish one reading; returns once the broker acked it (PUBACK, MQTT 3.1.1 §4.3.2)."""
        reading = Reading(device=self.device, seq=seq, ts_ms=now_ms(), metrics=metrics)
        info = self._client.publish(f"baton/d/{self.device}/r", codec.encode(reading), qos=1)
        fut = self._acked.setdefault(info.mid, self._loop.create_future())
        async with timeout(WAIT_S):
            await fut
