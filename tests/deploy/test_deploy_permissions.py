"""A device publishes only as itself and hears only its own commands, over NATS and MQTT.

The leaf runs from the tree `install.sh --root` wrote, with the credentials `baton creds`
generated. Refusals are observed, never inferred from silence after a sleep: a NATS
client gets the server's `-ERR 'Permissions Violation ...'`, an MQTT SUBSCRIBE gets
SUBACK 0x80 (MQTT 3.1.1 §3.9.3), and an MQTT PUBLISH (which has no negative ack in
3.1.1) is followed on the same connection by an allowed one: messages from one
connection arrive in order, so once the allowed one is seen, the refused one never will.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
import paho.mqtt.client as mqtt
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from shared import subjects
from shared.compat import timeout
from shared.creds import EDGE_USER, CredStore
from shared.natsrun import NatsServer
from shared.natsrun.monitor import poll_until

from ._support import installed_leaf

pytestmark = pytest.mark.usefixtures("no_nats_left")

A, B = "dev-a", "dev-b"
WAIT_S = 10.0
_ids = itertools.count()


@pytest.fixture
async def leaf(installed: Path, tmp_path: Path) -> AsyncIterator[tuple[NatsServer, int]]:
    server, mqtt_port = installed_leaf(installed, tmp_path / "leaf")
    async with server:
        yield server, mqtt_port


class Observer:
    """The edge daemon's view of the device subjects: every message, in arrival order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self._waiters: list[tuple[Callable[[str, bytes], bool], asyncio.Future[None]]] = []

    async def on_msg(self, msg: Msg) -> None:
        self.seen.append((msg.subject, msg.data))
        for match, fut in self._waiters:
            if not fut.done() and match(msg.subject, msg.data):
                fut.set_result(None)

    async def wait_for(self, subject: str, data: bytes) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if (subject, data) in self.seen:
            return
        self._waiters.append((lambda s, d: (s, d) == (subject, data), fut))
        async with timeout(WAIT_S):
            await fut


async def _edge(leaf: NatsServer, store: CredStore, gateway: str = "gw1") -> Client:
    return await nats.connect(
        leaf.client_url,
        user=EDGE_USER,
        password=store.edge_password(gateway),
        allow_reconnect=False,
    )


async def wait_subscribed(server: NatsServer, subject: str) -> None:
    """Until the server holds a subscription on `subject`.

    nats-py's flush() writes its PING ahead of a SUB still in its buffer, so a PONG does
    not prove the server has the subscription; the server's own list does.
    """

    async def held() -> bool:
        connz = await server.monitor("/connz?subs=1")
        return any(subject in c.get("subscriptions_list", []) for c in connz["connections"])

    await poll_until(held, timeout_s=WAIT_S)


async def _observer(server: NatsServer, edge: Client) -> Observer:
    observer = Observer()
    await edge.subscribe("baton.d.>", cb=observer.on_msg)
    await wait_subscribed(server, "baton.d.>")
    return observer


# -- NATS -----------------------------------------------------------------------------------


class Violations:
    """Errors the server sent this connection, as the client's error callback sees them."""

    def __init__(self) -> None:
        self.errors: asyncio.Queue[str] = asyncio.Queue()

    async def on_error(self, exc: Exception) -> None:
        await self.errors.put(str(exc))

    async def next(self) -> str:
        async with timeout(WAIT_S):
            return await self.errors.get()


async def test_device_over_nats_publishes_and_hears_only_as_itself(
    leaf: tuple[NatsServer, int], store: CredStore
) -> None:
    server, _ = leaf
    edge = await _edge(server, store)
    violations = Violations()
    dev = await nats.connect(
        server.client_url,
        user=A,
        password=store.device_password(A),
        error_cb=violations.on_error,
        allow_reconnect=False,
    )
    try:
        observer = await _observer(server, edge)
        for kind in ("r", "ack", "status"):
            await dev.publish(f"baton.d.{A}.{kind}", b"own")
            await observer.wait_for(f"baton.d.{A}.{kind}", b"own")

        await dev.publish(f"baton.d.{B}.r", b"spoofed")
        assert f'publish to "baton.d.{B}.r"' in await violations.next()
        for pattern in (f"baton.d.{B}.cmd", ">", "baton.d.*.cmd", f"baton.d.{A}.r"):
            await dev.subscribe(pattern)
            assert f'subscription to "{pattern}"' in await violations.next()

        own = await dev.subscribe(f"baton.d.{A}.cmd")
        await wait_subscribed(server, f"baton.d.{A}.cmd")
        await edge.publish(f"baton.d.{B}.cmd", b"for b")
        await edge.publish(f"baton.d.{A}.cmd", b"for a")
        got = await own.next_msg(timeout=WAIT_S)
        assert (got.subject, got.data) == (f"baton.d.{A}.cmd", b"for a")
        await dev.publish(f"baton.d.{A}.r", b"sentinel")
        await observer.wait_for(f"baton.d.{A}.r", b"sentinel")
        assert (f"baton.d.{B}.r", b"spoofed") not in observer.seen
    finally:
        await dev.close()
        await edge.close()


async def _connect_refused(url: str, user: str | None = None, password: str | None = None) -> str:
    """Connect and expect the server to refuse; the error text. Closes what nats.connect
    leaves open when the server says no (its transport would leak otherwise)."""
    nc = Client()
    try:
        await nc.connect(
            url, user=user, password=password, allow_reconnect=False, max_reconnect_attempts=0
        )
    except (nats.errors.Error, OSError) as exc:
        return str(exc)
    finally:
        await nc.close()
    raise AssertionError(f"{url} accepted user {user!r}")


async def test_wrong_or_missing_credentials_are_refused_over_nats(
    leaf: tuple[NatsServer, int], store: CredStore
) -> None:
    server, _ = leaf
    # A device's password is not another's, and there is no anonymous login.
    refused = await _connect_refused(server.client_url, user=B, password=store.device_password(A))
    assert "authorization" in refused.lower()
    assert "authorization" in (await _connect_refused(server.client_url)).lower()


# -- MQTT -----------------------------------------------------------------------------------


class MqttDevice:
    """A paho-mqtt 2.x client whose callbacks (on paho's thread) resolve asyncio futures."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._port = port
        self.connected: asyncio.Future[ReasonCode] = self._loop.create_future()
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self.messages: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{next(_ids)}",
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(user, password)
        # The device's last will goes to its own status topic: allowed.
        self.client.will_set(subjects.mqtt_status(user), b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self._soon(_settle, self.connected, rc)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        fut = self._subacks.get(mid)
        if fut is not None:
            self._soon(_settle, fut, codes)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._soon(self.messages.put_nowait, (msg.topic, msg.payload))

    async def connect(self) -> ReasonCode:
        self.client.connect("127.0.0.1", self._port)
        self.client.loop_start()
        async with timeout(WAIT_S):
            return await self.connected

    async def subscribe(self, topic: str) -> ReasonCode:
        fut: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        # paho may call back before subscribe() returns: register under its lock.
        with self.client._callback_mutex:
            _, mid = self.client.subscribe(topic, qos=1)
            assert mid is not None, f"SUBSCRIBE {topic} not sent"
            self._subacks[mid] = fut
        async with timeout(WAIT_S):
            [code] = await fut
        return code

    async def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        await asyncio.to_thread(info.wait_for_publish, WAIT_S)

    async def next_message(self) -> tuple[str, bytes]:
        async with timeout(WAIT_S):
            return await self.messages.get()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


async def test_device_over_mqtt_publishes_and_hears_only_as_itself(
    leaf: tuple[NatsServer, int], store: CredStore
) -> None:
    server, mqtt_port = leaf
    edge = await _edge(server, store)
    dev = MqttDevice(mqtt_port, A, store.device_password(A))
    try:
        observer = await _observer(server, edge)
        assert not (await dev.connect()).is_failure
        for topic in (subjects.mqtt_command(B), "#", "baton/d/+/cmd", subjects.mqtt_reading(A)):
            code = await dev.subscribe(topic)
            assert code.is_failure, f"SUBSCRIBE {topic} granted: {code}"
        assert not (await dev.subscribe(subjects.mqtt_command(A))).is_failure
        # SUBACK comes after the server registered the subscription: no race here.

        await edge.publish(subjects.mqtt_to_nats(subjects.mqtt_command(B)), b"for b")
        await edge.publish(subjects.mqtt_to_nats(subjects.mqtt_command(A)), b"for a")
        assert await dev.next_message() == (subjects.mqtt_command(A), b"for a")

        await dev.publish(subjects.mqtt_reading(B), b"spoofed")
        await dev.publish(subjects.mqtt_ack(B), b"spoofed")
        await dev.publish(subjects.mqtt_reading(A), b"own")
        await observer.wait_for(f"baton.d.{A}.r", b"own")
        assert not [seen for seen in observer.seen if seen[1] == b"spoofed"]
        assert dev.messages.empty(), "the device heard something not meant for it"
    finally:
        dev.close()
        await edge.close()


async def test_mqtt_login_with_another_devices_password_is_refused(
    leaf: tuple[NatsServer, int], store: CredStore
) -> None:
    _, mqtt_port = leaf
    dev = MqttDevice(mqtt_port, B, store.device_password(A))
    try:
        code = await dev.connect()
        assert code.is_failure and "authorized" in str(code).lower()
    finally:
        dev.close()
