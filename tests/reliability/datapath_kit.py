"""Tools of the data-path reliability tests (`test_rel_datapath_*.py`).

    LinkRelay       a TCP relay on the leaf node link (leaf → relay → hub) that a test can
                    cut: `refuse` (connections reset, the hub unreachable) or `blackhole`
                    (bytes silently dropped, the link looks up)
    linked_pair     hub + gateway leaf whose leaf node link runs through a `LinkRelay`
    MqttLoad        sensors publishing readings at QoS 1 to the leaf's MQTT listener at a
                    steady rate, recording what the leaf acknowledged (PUBACK)
    EdgeProcess     `baton edge run` as a subprocess, for kill -9
    cloud_replica   one cloud `Orchestrator` on the hub
    HubView         what reached the hub: FLEET per device, twins in KV
    verdict         acknowledged vs. at the hub → lost / duplicated / order figures

Waiting is on server state with deadlines (`poll_until`) or on futures and conditions the
tools resolve; the only timed pauses are the load's pacing and the outages a test wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
import paho.mqtt.client as mqtt
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import KeyNotFoundError
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import CloudConfig
from cloud.orchestrator import Orchestrator
from cloud.twins.record import TwinRecord
from shared import codec, streams, subjects
from shared.compat import timeout
from shared.messages import Reading
from shared.natsrun import LocalTopology, NatsServer, ServerConfig, free_port, leaf_config
from shared.natsrun.monitor import poll_until

GW = "gw1"
HOST = "127.0.0.1"
# Every wait in these tests is for loopback traffic or a local restart; a deadline this
# long only bounds a broken run (a loaded 2-core CI machine included).
DEADLINE_S = 60.0


def reading(device: str, seq: int) -> bytes:
    return codec.encode(
        Reading(
            device=device, seq=seq, ts_ms=1_700_000_000_000 + seq, metrics={"t": 20.0 + seq % 7}
        )
    )


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Await until `check()` (sync or async) is truthy; AssertionError after the deadline."""

    async def holds() -> bool:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        return bool(value)

    try:
        await poll_until(holds, timeout_s=timeout_s)
    except asyncio.TimeoutError:
        raise AssertionError(f"not seen in {timeout_s}s: {what}") from None


# -- the leaf node link, cuttable ----------------------------------------------------


class LinkRelay:
    """Relays the leaf's leaf node connection to the hub; `cut()` and `heal()` it.

    refuse     open connections are closed and new ones closed at once: the hub's
               address answers nothing (a router down, the hub host gone)
    blackhole  connections stay open but every byte is dropped: a silent partition,
               noticed only by timeouts; `heal()` then drops those dead connections
    """

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._mode: Literal["open", "refuse", "blackhole"] = "open"
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.cuts = 0

    @property
    def url(self) -> str:
        return f"nats-leaf://{HOST}:{self.port}"

    async def __aenter__(self) -> LinkRelay:
        self._server = await asyncio.start_server(self._accept, HOST, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._drop_all()
        if server is not None:
            await server.wait_closed()

    async def cut(self, mode: Literal["refuse", "blackhole"] = "refuse") -> None:
        self.cuts += 1
        self._mode = mode
        if mode == "refuse":
            await self._drop_all()

    async def heal(self) -> None:
        if self._mode == "blackhole":
            await self._drop_all()  # what was swallowed is gone, like a flushed NAT table
        self._mode = "open"

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in list(self._writers):
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "refuse":
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self._target_port)
        except OSError:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst), name="link-relay-pump")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self._mode == "blackhole":
                    continue
                dst.write(data)
                await dst.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            dst.close()


@dataclass(frozen=True, slots=True)
class _HubBehindRelay(ServerConfig):
    """The hub config, with `no_advertise` on its leaf node listener: otherwise the hub
    tells the leaf its real leaf node address (INFO `leafnode_urls`), and the leaf
    redials that directly, around the relay, the moment the relay cuts it off."""

    def _leafnodes(self) -> list[str]:
        lines = ServerConfig._leafnodes(self)
        return [*lines[:-1], "  no_advertise: true", lines[-1]]


@asynccontextmanager
async def linked_pair(
    base: Path, *, sync_always: bool = True, gateway: str = GW, leaf_store: Path | None = None
) -> AsyncIterator[tuple[LocalTopology, LinkRelay]]:
    """Hub + leaf (`LocalTopology` shape) with the leaf node link through a `LinkRelay`;
    the leaf's store in `leaf_store` when given."""
    topo = LocalTopology(gateway, base_dir=base, sync_always=sync_always)
    hub_cfg = topo.hub.config
    assert hub_cfg.leafnode_port is not None
    topo.hub = NatsServer(
        _HubBehindRelay(**{f.name: getattr(hub_cfg, f.name) for f in fields(hub_cfg)})
    )
    leafnode_port = hub_cfg.leafnode_port
    async with LinkRelay(leafnode_port) as relay:
        topo.leaf = NatsServer(
            leaf_config(
                gateway,
                relay.url,
                store_dir=leaf_store or base / f"edge-{gateway}",
                sync_always=sync_always,
            )
        )
        async with topo:
            yield topo, relay


# -- sensors -----------------------------------------------------------------------


class Signal:
    """Wake every waiter whose condition may have changed; `notify()` is not async."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            fut = asyncio.get_running_loop().create_future()
            self._waiters.add(fut)
            try:
                await fut
            finally:
                self._waiters.discard(fut)


class MqttLoad:
    """Devices publishing readings (seq 0, 1, ...) at QoS 1 over one MQTT connection.

    `acked[device]` lists, in PUBACK order, the sequences the leaf acknowledged
    (MQTT 3.1.1 §4.3.2: the sender may forget the message). paho reconnects by itself
    and re-sends what was in flight (DUP), so a leaf restart is survived.
    """

    def __init__(
        self,
        url: str,
        devices: Iterable[str],
        *,
        rate_per_s: float = 200.0,
        window: int = 32,
        client_id: str = "rel-sensors",
        payload: Callable[[str, int], bytes] = reading,
    ) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or HOST, parts.port or 1883
        self.devices = list(devices)
        self.rate_per_s = rate_per_s
        self._window = window
        self._payload = payload
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self._client.max_inflight_messages_set(window)
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._client.on_socket_open = _no_delay
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, tuple[str, int]] = {}
        self.changed = Signal()
        self.sent: dict[str, int] = {d: 0 for d in self.devices}
        self.acked: dict[str, list[int]] = {d: [] for d in self.devices}
        self.acked_total = 0
        self.connects = 0

    # paho's network thread -> the event loop
    def _on_connect(self, *_: Any) -> None:
        self._loop.call_soon_threadsafe(self._connected)

    def _connected(self) -> None:
        self.connects += 1
        self.changed.notify()

    def _on_publish(self, _c: Any, _u: Any, mid: int, *_: Any) -> None:
        self._loop.call_soon_threadsafe(self._settle, mid)

    def _settle(self, mid: int) -> None:
        item = self._pending.pop(mid, None)
        if item is None:
            return
        device, seq = item
        self.acked[device].append(seq)
        self.acked_total += 1
        self.changed.notify()

    async def __aenter__(self) -> MqttLoad:
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        async with timeout(DEADLINE_S):
            await self.changed.wait_for(lambda: self.connects > 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def publish_one(self, device: str) -> None:
        seq = self.sent[device]
        self.sent[device] = seq + 1
        info = self._client.publish(
            subjects.mqtt_reading(device), self._payload(device, seq), qos=1
        )
        self._pending[info.mid] = (device, seq)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish round after round (one reading per device) until `stop` is set.

        At most `window` readings wait for their PUBACK; the pacing sleep only spreads
        the rounds to `rate_per_s` (a rate, not a synchronisation).
        """
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        period = len(self.devices) / self.rate_per_s
        room = lambda: self.in_flight + len(self.devices) <= self._window or stop.is_set()  # noqa: E731
        while not stop.is_set():
            await self.changed.wait_for(room)
            if stop.is_set():
                break
            for device in self.devices:
                self.publish_one(device)
            next_round = max(next_round + period, loop.time() - period)
            await asyncio.sleep(max(0.0, next_round - loop.time()))

    async def wait_acked(self, total: int, timeout_s: float = DEADLINE_S) -> None:
        """Until at least `total` readings were acknowledged."""
        async with timeout(timeout_s):
            await self.changed.wait_for(lambda: self.acked_total >= total)

    async def settle(self, timeout_s: float = DEADLINE_S) -> None:
        """Until every reading published so far was acknowledged."""
        async with timeout(timeout_s):
            await self.changed.wait_for(lambda: not self._pending)


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    # paho never sets it; without it every QoS 1 hop waits ~40 ms for a delayed ACK.
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@asynccontextmanager
async def sustained(load: MqttLoad) -> AsyncIterator[asyncio.Task[None]]:
    """Run `load` in the background for the block; stop it (and await it) after."""
    stop = asyncio.Event()
    task = asyncio.create_task(load.run(stop), name="mqtt-load")
    try:
        yield task
    finally:
        stop.set()
        load.changed.notify()
        await task


# -- the edge daemon as a process -----------------------------------------------------


def write_edge_config(path: Path, leaf_url: str, **uplink: Any) -> Path:
    """An edge.toml for `baton edge run`: uplink on (fast retries), downlink off."""
    up = {"enabled": True, "hub_ack_timeout_s": 1.0, "retry_backoff_max_s": 0.3, **uplink}
    lines = [
        f'gateway = "{GW}"',
        f'nats_url = "{leaf_url}"',
        f'state_dir = "{path.parent / "edge-state"}"',
        "[uplink]",
        *(f"{k} = {json.dumps(v)}" for k, v in up.items()),
        "[downlink]",
        "enabled = false",
        "[http]",
        "port = 0",
        "[store]",
        "flush_interval_ms = 50",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class EdgeProcess:
    """`baton edge run --config ...` as a child process; its JSON log goes to a file."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self._config = config
        self._log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.starts = 0

    async def start(self) -> None:
        self.ready = asyncio.Event()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shared.cli.main", "edge", "run",
            "--config", str(self._config), "--log-format", "json",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
        )  # fmt: skip
        self.starts += 1
        self._reader = asyncio.create_task(self._read(self.proc), name="edge-log-reader")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        with self._log_path.open("ab") as log:
            while raw := await proc.stderr.readline():
                log.write(raw)
                with contextlib.suppress(ValueError):
                    if "ready" in json.loads(raw).get("msg", ""):
                        self.ready.set()

    async def wait_ready(self, timeout_s: float = DEADLINE_S) -> None:
        async with timeout(timeout_s):
            await self.ready.wait()

    async def kill9(self) -> None:
        """SIGKILL, as a crash or the OOM killer would; reap it."""
        proc = self.proc
        assert proc is not None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await self._reap()

    async def aclose(self) -> None:
        """SIGTERM (drain) and wait; SIGKILL if it does not stop."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with timeout(20):
                    await proc.wait()
            except asyncio.TimeoutError:
                proc.kill()
        await self._reap()

    async def _reap(self) -> None:
        proc, reader = self.proc, self._reader
        if proc is not None:
            await proc.wait()
        if reader is not None:
            await reader
        self.proc = self._reader = None


# -- the cloud ------------------------------------------------------------------------


def cloud_config(hub_url: str, state_dir: Path, replica: str = "a", **fields: Any) -> CloudConfig:
    data: dict[str, Any] = {
        "nats_url": hub_url,
        "replica": replica,
        "state_dir": state_dir / f"cloud-{replica}",
        "http": {"port": 0},
        "ingest": {"workers": 1, "batch": 64},
        "planner": {"enabled": False},
        "reconcile_interval_s": 0.2,
        "readmodel": {"backfill_minutes": 0},
    }
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return CloudConfig(**data)


@asynccontextmanager
async def cloud_replica(
    hub_url: str, state_dir: Path, replica: str = "a", **fields: Any
) -> AsyncIterator[Orchestrator]:
    async with Orchestrator(cloud_config(hub_url, state_dir, replica, **fields)) as orch:
        yield orch
    assert orch.failed is None, f"replica {replica} failed: {orch.failed!r}"


def ingest_count(orch: Orchestrator, kind: str, outcome: str) -> float:
    labels = {"kind": kind, "outcome": outcome}
    sample = orch.metrics.registry.get_sample_value("baton_cloud_ingest_messages_total", labels)
    return sample or 0.0


# -- what reached the hub ------------------------------------------------------------------


class HubView:
    """Reads the hub: FLEET per device (stream order), twins in the KV bucket."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()

    @classmethod
    @asynccontextmanager
    async def open(cls, hub_url: str, *, ensure: bool = True) -> AsyncIterator[HubView]:
        nc = await nats.connect(hub_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        try:
            view = cls(nc)
            if ensure:
                await streams.ensure_hub(view.js)
            yield view
        finally:
            await nc.close()

    async def count(self, kind: str = "r", gw: str = GW) -> int:
        info = await self.js.stream_info(
            subjects.FLEET_STREAM, subjects_filter=f"fleet.{gw}.{kind}.*"
        )
        return sum((info.state.subjects or {}).values())

    async def wait_count(self, count: int, kind: str = "r", timeout_s: float = DEADLINE_S) -> bool:
        """Until FLEET holds `count` `kind` messages; False (not raised) after the deadline,
        so the caller can report what is missing."""

        async def enough() -> bool:
            return await self.count(kind) >= count

        try:
            await poll_until(enough, timeout_s=timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    async def per_device(self, kind: str = "r", gw: str = GW) -> dict[str, list[int]]:
        """Reading sequences per device, in FLEET stream order."""
        expected = await self.count(kind, gw)
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30.0)
        sub = await self.js.pull_subscribe(
            f"fleet.{gw}.{kind}.*", stream=subjects.FLEET_STREAM, config=config
        )
        seqs: dict[str, list[int]] = defaultdict(list)
        got = 0
        try:
            while got < expected:
                msgs = await sub.fetch(min(1000, expected - got), timeout=10)
                for msg in msgs:
                    r = codec.decode(msg.data, Reading)
                    seqs[r.device].append(r.seq)
                got += len(msgs)
        finally:
            await sub.unsubscribe()
        return dict(seqs)

    async def ids(self, kind: str = "r", gw: str = GW) -> list[str]:
        """The Nats-Msg-Id of every FLEET `kind` message, in stream order."""
        expected = await self.count(kind, gw)
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30.0)
        sub = await self.js.pull_subscribe(
            f"fleet.{gw}.{kind}.*", stream=subjects.FLEET_STREAM, config=config
        )
        ids: list[str] = []
        try:
            while len(ids) < expected:
                msgs = await sub.fetch(min(1000, expected - len(ids)), timeout=10)
                ids += [(m.headers or {}).get(subjects.HDR_MSG_ID, "") for m in msgs]
        finally:
            await sub.unsubscribe()
        return ids

    async def per_device_has_last(self, sent: dict[str, int], kind: str = "r") -> bool:
        """Whether FLEET holds, for each device, the last of its `sent[device]` readings."""
        for device, count in sent.items():
            subject = f"fleet.{GW}.{kind}.{device}"
            try:
                msg = await self.js.get_last_msg(subjects.FLEET_STREAM, subject)
            except nats.js.errors.NotFoundError:
                return False
            if codec.decode(msg.data, Reading).seq != count - 1:
                return False
        return True

    async def twin(self, device: str, gw: str = GW) -> TwinRecord | None:
        kv = await self.js.key_value(subjects.TWINS_BUCKET)
        try:
            entry = await kv.get(f"{gw}.{device}")
        except KeyNotFoundError:
            return None
        return TwinRecord.decode(entry.value) if entry.value else None


class LeafView:
    """Reads the gateway leaf's UPLINK stream (the store-and-forward backlog)."""

    def __init__(self, nc: Client, gw: str = GW) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(domain=subjects.gateway_domain(gw))

    @classmethod
    @asynccontextmanager
    async def open(cls, leaf_url: str) -> AsyncIterator[LeafView]:
        nc = await nats.connect(leaf_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        try:
            yield cls(nc)
        finally:
            await nc.close()

    async def backlog(self) -> tuple[int, int]:
        """(messages, bytes) in the leaf's UPLINK stream now."""
        state = (await self.js.stream_info(subjects.UPLINK_STREAM)).state
        return state.messages, state.bytes

    async def stored_ids(self) -> list[str]:
        """The hub ids (Nats-Msg-Id) of what the UPLINK stream holds now, in order:
        readings `gw/dev/r/seq`, the daemon's items by the id it submitted them under."""
        state = (await self.js.stream_info(subjects.UPLINK_STREAM)).state
        held: list[str] = []
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await self.js.get_msg(subjects.UPLINK_STREAM, seq)
            except nats.js.errors.NotFoundError:  # acked or discarded meanwhile
                continue
            subject = msg.subject or ""
            if subject.startswith("baton.d.") and subject.endswith(".r") and msg.data:
                r = codec.decode(msg.data, Reading)
                held.append(subjects.msg_id(GW, r.device, "r", r.seq))
            elif msg.headers and subjects.HDR_MSG_ID in msg.headers:
                held.append(msg.headers[subjects.HDR_MSG_ID])
            else:
                held.append(f"{subject}#{seq}")
        return held

    async def wait_empty(self, timeout_s: float = DEADLINE_S) -> bool:
        async def empty() -> bool:
            return (await self.backlog())[0] == 0

        try:
            await poll_until(empty, timeout_s=timeout_s)
        except asyncio.TimeoutError:
            return False
        return True


# -- the verdict ----------------------------------------------------------------------------


@dataclass
class Verdict:
    """Acknowledged readings against what the hub holds."""

    acknowledged: int
    at_hub: int
    lost: int
    duplicated: int
    order_kept: bool
    unacked_delivered: int
    lost_examples: list[tuple[str, int]] = field(default_factory=list)

    def figures(self) -> dict[str, int | bool]:
        return {
            "acknowledged": self.acknowledged,
            "at_hub": self.at_hub,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "order_kept": self.order_kept,
        }


def verdict(acked: dict[str, list[int]], at_hub: dict[str, list[int]]) -> Verdict:
    lost: list[tuple[str, int]] = []
    duplicated = 0
    unacked = 0
    order = True
    for device in sorted(set(acked) | set(at_hub)):
        hub = at_hub.get(device, [])
        have = set(hub)
        mine = set(acked.get(device, []))
        lost += [(device, s) for s in sorted(mine - have)]
        duplicated += len(hub) - len(have)
        unacked += len(have - mine)
        order = order and hub == sorted(hub)
    return Verdict(
        acknowledged=sum(len(v) for v in acked.values()),
        at_hub=sum(len(v) for v in at_hub.values()),
        lost=len(lost),
        duplicated=duplicated,
        order_kept=order,
        unacked_delivered=unacked,
        lost_examples=lost[:10],
    )


class FleetWatcher:
    """Arrival times of `fleet.<gw>.<kind>.*` publishes at the hub (a core subscription:
    it sees every forwarded copy, including those the FLEET dedupe then drops)."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.changed = Signal()
        self._sub: Any = None

    @classmethod
    @asynccontextmanager
    async def open(cls, nc: Client, kind: str = "r", gw: str = GW) -> AsyncIterator[FleetWatcher]:
        watcher = cls()
        loop = asyncio.get_running_loop()

        async def arrived(_msg: Any) -> None:
            watcher.arrivals.append(loop.time())
            watcher.changed.notify()

        watcher._sub = await nc.subscribe(f"fleet.{gw}.{kind}.*", cb=arrived)
        await nc.flush()
        try:
            yield watcher
        finally:
            with contextlib.suppress(nats.errors.Error):
                await watcher._sub.unsubscribe()

    @property
    def count(self) -> int:
        return len(self.arrivals)

    async def wait_count(self, count: int, timeout_s: float = DEADLINE_S) -> None:
        async with timeout(timeout_s):
            await self.changed.wait_for(lambda: self.count >= count)

    async def first_after(self, since: float, timeout_s: float = DEADLINE_S) -> float:
        """Loop time of the first arrival after `since` (waits for it)."""
        async with timeout(timeout_s):
            await self.changed.wait_for(lambda: bool(self.arrivals) and self.arrivals[-1] > since)
        return next(t for t in self.arrivals if t > since)


def sqlite_integrity(db: Path) -> str:
    """`PRAGMA integrity_check` of an SQLite file: "ok" when sound."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "; ".join(str(r[0]) for r in rows)
