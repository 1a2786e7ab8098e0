"""The daemon against a real hub + leaf and real MQTT clients.

What a user notices: a device that publishes an over-limit temp_c over MQTT gets
its fan command on its own command topic within milliseconds, whether the daemon reads
the leaf's subjects or an MQTT broker; the decision is on record; /healthz and /metrics
answer; decisions reach the hub, and a command from the hub reaches the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from edge.config import EdgeConfig
from edge.daemon import EdgeDaemon
from edge.store import EdgeStore
from shared import codec, streams
from shared.compat import timeout
from shared.messages import Command, Decision, Reading, now_ms
from shared.natsrun import LocalTopology, free_port
from shared.natsrun.monitor import poll_until

DaemonFactory = Callable[..., Awaitable[EdgeDaemon]]
ConfigFactory = Callable[..., EdgeConfig]
DeviceFactory = Callable[[str, str], Awaitable[Any]]
WAIT_S = 10.0


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        await writer.drain()
        async with timeout(WAIT_S):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_overheated_device_gets_its_fan_command(
    daemon: DaemonFactory, topology: LocalTopology, mqtt_device: DeviceFactory
) -> None:
    d = await daemon()
    pump = await mqtt_device("pump1", topology.leaf.mqtt_url)
    pump.publish(1, temp_c=60.0)
    pump.publish(2, temp_c=75.0)
    pump.publish(3, temp_c=76.0)  # the default rule debounces over two readings
    cmd = await pump.next_command()
    assert (cmd.device, cmd.action, cmd.params, cmd.gw) == ("pump1", "fan", {"on": True}, "gw1")

    await d.flush()
    [row] = await d.store.call(EdgeStore.decisions, "pump1")
    assert (row["cmd_id"], row["name"], row["reading_seq"]) == (cmd.cmd_id, "overheat", 3)
    stats = d.stats()
    assert (stats.readings_ok, stats.decisions, stats.commands_sent) == (3, 1, 1)
    assert stats.latency_p50_us is not None


async def test_health_and_metrics_endpoints(
    daemon: DaemonFactory, topology: LocalTopology, mqtt_device: DeviceFactory
) -> None:
    d = await daemon()
    assert d.http_port
    pump = await mqtt_device("pump1", topology.leaf.mqtt_url)
    pump.publish_raw(b"\x93\x01")  # truncated msgpack
    pump.publish(1, temp_c=80.0)
    pump.publish(2, temp_c=80.0)
    await pump.next_command()

    status, body = await http_get(d.http_port, "/healthz")
    health = json.loads(body)
    assert status == 200
    assert health["ready"] and health["nats_connected"] and health["gateway"] == "gw1"
    status, body = await http_get(d.http_port, "/metrics")
    text = body.decode()
    assert status == 200
    assert 'baton_edge_quarantine_total{reason="malformed"} 1.0' in text
    assert 'baton_edge_readings_total{result="ok"} 2.0' in text
    assert 'baton_edge_commands_total{origin="rule",result="sent"} 1.0' in text
    assert "baton_edge_reflex_latency_seconds_count 1.0" in text
    assert (await http_get(d.http_port, "/nope"))[0] == 404


async def test_mqtt_source_on_the_leaf_listener(
    daemon: DaemonFactory,
    topology: LocalTopology,
    mqtt_device: DeviceFactory,
    edge_config: ConfigFactory,
) -> None:
    config = edge_config(ingest={"source": "mqtt", "mqtt_url": topology.leaf.mqtt_url})
    await daemon(config)
    pump = await mqtt_device("pump1", topology.leaf.mqtt_url)
    pump.publish(1, temp_c=90.0)
    pump.publish(2, temp_c=90.0)
    assert (await pump.next_command()).action == "fan"


@pytest.fixture
async def mosquitto(tmp_path: Path) -> AsyncIterator[str]:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = await asyncio.create_subprocess_exec(
        binary, "-c", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        async with timeout(WAIT_S):  # mosquitto logs its listener once it is open
            while b"Opening ipv4 listen socket" not in await proc.stderr.readline():
                pass
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.mosquitto
async def test_mqtt_source_on_mosquitto(
    mosquitto: str,
    edge_config: ConfigFactory,
    mqtt_device: DeviceFactory,
) -> None:
    from edge.ingest.mqtt_source import MqttSource

    source = MqttSource(mosquitto, "baton-edge-gw1")
    config = edge_config(http={"enabled": False}, ingest={"source": "mqtt", "mqtt_url": mosquitto})
    d = EdgeDaemon(config, source=source)  # no NATS at all: uplink and downlink are off
    async with d:
        pump = await mqtt_device("pump1", mosquitto)
        pump.publish(1, temp_c=90.0)
        pump.publish(2, temp_c=90.0)
        assert (await pump.next_command()).action == "fan"
        assert d.health()["nats_connected"] is None


async def test_decisions_reach_the_hub_and_hub_commands_reach_the_device(
    daemon: DaemonFactory,
    topology: LocalTopology,
    mqtt_device: DeviceFactory,
    edge_config: ConfigFactory,
) -> None:
    hub = await nats.connect(topology.hub.client_url)
    try:
        js = hub.jetstream()
        await streams.ensure_hub(js)
        fleet = await js.subscribe("fleet.gw1.dec.>", ordered_consumer=True)
        d = await daemon(edge_config(nats_url=topology.leaf.client_url, uplink=True, downlink=True))
        pump = await mqtt_device("pump1", topology.leaf.mqtt_url)
        pump.publish(1, temp_c=90.0)
        pump.publish(2, temp_c=90.0)
        cmd = await pump.next_command()
        msg = await fleet.next_msg(timeout=WAIT_S)
        decision = codec.decode(msg.data, Decision)
        assert decision.command is not None and decision.command.cmd_id == cmd.cmd_id

        down = Command(device="pump1", action="fan", params={"on": False},
                       deadline_ms=now_ms() + 30_000)  # fmt: skip
        await js.publish("downlink.gw1.cmd.pump1", codec.encode(down))
        got = await pump.next_command()
        assert (got.cmd_id, got.params) == (down.cmd_id, {"on": False})
        assert d.stats().commands_sent == 2
        await fleet.unsubscribe()
    finally:
        await hub.close()


async def test_the_daemon_outlives_a_leaf_restart(
    daemon: DaemonFactory, topology: LocalTopology
) -> None:
    d = await daemon()
    await topology.leaf.restart()

    async def reconnected() -> bool:
        return bool(d.health()["nats_connected"])

    await poll_until(reconnected, timeout_s=WAIT_S)
    nc = await nats.connect(topology.leaf.client_url)
    try:
        commands = await nc.subscribe("baton.d.pump1.cmd")
        await nc.flush()

        async def device() -> None:
            # A sensor keeps publishing; the first readings may beat the daemon's
            # re-subscription across the fresh server.
            seq = 0
            while True:
                seq += 1
                reading = codec.encode(Reading(device="pump1", seq=seq, ts_ms=now_ms(),
                                               metrics={"temp_c": 95.0}))  # fmt: skip
                await nc.publish("baton.d.pump1.r", reading)
                await asyncio.sleep(0.05)

        publisher = asyncio.create_task(device(), name="test-device")
        try:
            msg = await commands.next_msg(timeout=WAIT_S)
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
        assert codec.decode(msg.data, Command).action == "fan"
    finally:
        await nc.close()


async def test_pump_overheat_scenario_gets_its_fan_and_cools(
    daemon: DaemonFactory, topology: LocalTopology
) -> None:
    from firmware_sim import Simulator

    await daemon()  # the default rule: temp_c above 70, clear at 65, debounce 2
    nc = await nats.connect(topology.leaf.client_url)
    try:
        commands = await nc.subscribe("baton.d.pump-0.cmd")
        readings = await nc.subscribe("baton.d.pump-0.r")
        # 3 simulated seconds per reading: the pump passes 70 °C in about 2 s of wall time.
        async with Simulator(
            topology.leaf.mqtt_url, "pump-overheat", rate=40, speed=120, duration=0
        ) as sim:
            runner = asyncio.create_task(sim.run(), name="sim-run")
            try:
                cmd = codec.decode((await commands.next_msg(timeout=30)).data, Command)
                assert (cmd.action, cmd.params) == ("fan", {"on": True})
                temps = await temperatures_until_cooled(readings, hot=70.0, cool=65.0)
            finally:
                sim.stop()
                await runner
        assert max(temps) > 70.0 and temps[-1] < 65.0
        assert sim.state("pump-0").fan == 1.0
    finally:
        await nc.close()


async def temperatures_until_cooled(sub: Any, *, hot: float, cool: float) -> list[float]:
    """The pump's readings in order, until it was above `hot` and then below `cool`."""
    temps: list[float] = []
    async with timeout(30):
        while not (temps and max(temps) > hot and temps[-1] < cool):
            msg = await sub.next_msg(timeout=30)
            temps.append(codec.decode(msg.data, Reading).metrics["temp_c"])
    return temps


async def test_bad_payloads_scenario_every_bad_one_quarantined_every_good_one_processed(
    daemon: DaemonFactory, topology: LocalTopology
) -> None:
    from firmware_sim import Simulator

    d = await daemon()
    async with Simulator(topology.leaf.mqtt_url, "bad-payloads", seed=3) as sim:
        summary = await sim.run()  # returns once the leaf acked every publish (QoS 1)
    expected = {"truncated": "malformed", "wrong_types": "invalid", "oversized": "too_large"}
    want: dict[str, int] = {}
    for kind, count in summary.malformed.items():
        want[expected[kind]] = want.get(expected[kind], 0) + count
    assert want and summary.acked == summary.sent

    async def all_handled() -> bool:
        s = d.stats()
        return s.readings_ok == summary.sent and s.quarantined_total == sum(want.values())

    await poll_until(all_handled, timeout_s=WAIT_S)
    assert d.stats().quarantined == want
    await d.flush()
    rows = await d.store.call(EdgeStore.quarantine, 1000)
    assert sorted(r["reason"] for r in rows) == sorted(
        reason for reason, n in want.items() for _ in range(n)
    )
