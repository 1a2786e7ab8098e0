"""The simulator against real brokers: mosquitto and the leaf nats-server's MQTT listener."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from firmware_sim import Simulator
from simhelpers import WAIT_S, Probe, ProbeFactory, run_mosquitto

from shared.codec import decode, encode
from shared.compat import timeout
from shared.errors import DecodeError
from shared.messages import Command, CommandAck, Reading, now_ms
from shared.natsrun import free_port
from shared.subjects import MQTT_READINGS_ALL, mqtt_ack, mqtt_command, mqtt_reading, mqtt_status


async def readings(probe: Probe, count: int) -> list[Reading]:
    """The next `count` messages on the reading topics, decoded."""
    return [decode((await probe.next()).payload, Reading) for _ in range(count)]


async def test_a_devices_readings_arrive_complete_and_in_order_at_qos1(
    broker_url: str, probe: ProbeFactory
) -> None:
    listener = await probe(broker_url, MQTT_READINGS_ALL)
    async with Simulator(
        broker_url, "pump-overheat", devices=3, rate=40, duration=1, qos=1, seq_start=0
    ) as sim:
        summary = await sim.run()
    assert (summary.readings, summary.sent, summary.acked) == (120, 120, 120)
    by_device: dict[str, list[int]] = defaultdict(list)
    for reading in await readings(listener, 120):
        by_device[reading.device].append(reading.seq)
    assert by_device == {device: list(range(40)) for device in sim.devices}


async def test_a_fan_command_lowers_the_simulated_temperature(
    broker_url: str, probe: ProbeFactory
) -> None:
    device = "pump-0"
    listener = await probe(broker_url, mqtt_reading(device), mqtt_ack(device))
    # 3 simulated seconds per reading: the pump heats (and cools) within seconds of wall time.
    async with Simulator(broker_url, "pump-overheat", rate=40, speed=120, duration=0) as sim:
        runner = asyncio.create_task(sim.run(), name="sim-run")
        try:
            await wait_for_temperature(listener, above=55.0)
            hot = sim.state(device).temp_c or 0.0
            cmd = Command(
                device=device, action="fan", params={"on": True}, deadline_ms=now_ms() + 10_000
            )
            await listener.publish(mqtt_command(device), encode(cmd))
            ack = await wait_for_ack(listener)
            assert ack.ok and ack.cmd_id == cmd.cmd_id and sim.state(device).fan == 1.0
            # 40 readings = 120 simulated seconds, half the thermal time constant.
            after = [r.metrics["temp_c"] for r in await readings_only(listener, 40)]
        finally:
            sim.stop()
            summary = await runner
    assert max(after[-5:]) < hot - 3.0
    assert (sim.state(device).temp_c or 99.0) < hot - 3.0
    assert (summary.commands, summary.commands_rejected) == (1, 0)


async def wait_for_temperature(listener: Probe, above: float) -> None:
    async with timeout(WAIT_S):
        while True:
            message = await listener.next()
            if (
                message.topic.endswith("/r")
                and decode(message.payload, Reading).metrics["temp_c"] > above
            ):
                return


async def wait_for_ack(listener: Probe) -> CommandAck:
    async with timeout(WAIT_S):
        while True:
            message = await listener.next()
            if message.topic.endswith("/ack"):
                return decode(message.payload, CommandAck)


async def readings_only(listener: Probe, count: int) -> list[Reading]:
    found: list[Reading] = []
    while len(found) < count:
        message = await listener.next()
        if message.topic.endswith("/r"):
            found.append(decode(message.payload, Reading))
    return found


async def run_and_collect(
    broker_url: str, listener: Probe, seed: int, prefix: str
) -> list[tuple[str, int, dict[str, float]]]:
    async with Simulator(
        broker_url,
        "fleet",
        devices=4,
        seed=seed,
        rate=50,
        duration=0.4,
        qos=1,
        id_prefix=prefix,
        seq_start=0,
    ) as sim:
        summary = await sim.run()
    got = await readings(listener, summary.sent)
    return sorted((r.device.removeprefix(prefix), r.seq, dict(r.metrics)) for r in got)


async def test_the_same_seed_gives_the_same_readings(broker_url: str, probe: ProbeFactory) -> None:
    listener = await probe(broker_url, MQTT_READINGS_ALL)
    first = await run_and_collect(broker_url, listener, 11, "a")
    again = await run_and_collect(broker_url, listener, 11, "b")
    other = await run_and_collect(broker_url, listener, 12, "c")
    assert len(first) >= 4 * 20 - 2  # the fleet's rare dropouts are part of the replay
    assert first == again
    assert first != other


async def test_the_malformed_fault_sends_exactly_the_bad_payloads_asked_for(
    broker_url: str, probe: ProbeFactory
) -> None:
    listener = await probe(broker_url, MQTT_READINGS_ALL)
    # 30 readings per device over 3 simulated seconds: every scheduled bad payload fires.
    async with Simulator(broker_url, "bad-payloads", rate=20, speed=2, duration=1.5) as sim:
        summary = await sim.run()
    asked = {"truncated": 3 * 2, "wrong_types": 2 * 2, "oversized": 1 * 2}
    assert summary.malformed == asked
    seen: Counter[str] = Counter()
    for _ in range(summary.sent + sum(asked.values())):
        try:
            decode((await listener.next()).payload, Reading)
            seen["reading"] += 1
        except DecodeError as exc:
            seen[type(exc).__name__] += 1
    assert seen == {
        "reading": summary.sent,
        "MalformedPayload": asked["truncated"],
        "InvalidMessage": asked["wrong_types"],
        "PayloadTooLarge": asked["oversized"],
    }


async def test_an_outage_fills_the_bounded_buffer_then_it_drains(
    mosquitto: str, probe: ProbeFactory, tmp_path: Path
) -> None:
    scenario = tmp_path / "outage.toml"
    scenario.write_text(
        'name = "outage"\n[network]\nqos = 1\nbuffer = 5\nbackoff_min_s = 0.05\nbackoff_max_s = 0.1\n'
        '[[profile]]\nname = "env"\n[profile.humidity]\n'
        '[[fault]]\nkind = "outage"\nat_s = 0.5\nfor_s = 0.5\n'
    )
    listener = await probe(mosquitto, MQTT_READINGS_ALL)
    async with Simulator(mosquitto, scenario, devices=2, rate=40, duration=1.5, seq_start=0) as sim:
        summary = await sim.run()
    assert summary.reconnects == 2
    assert summary.dropped_buffer > 0
    assert summary.sent + summary.dropped_buffer == summary.readings == 120
    seen: dict[str, list[int]] = {device: [] for device in sim.devices}
    async with timeout(WAIT_S):
        while any(59 not in seqs for seqs in seen.values()):
            reading = decode((await listener.next()).payload, Reading)
            seen[reading.device].append(reading.seq)
    # At least once: a reading in flight when the link died is re-sent after it (DUP).
    firsts = {device: list(dict.fromkeys(seqs)) for device, seqs in seen.items()}
    assert all(seqs == sorted(seqs) for seqs in firsts.values())
    assert sum(len(seqs) for seqs in firsts.values()) == summary.sent


@pytest.mark.parametrize("connections", [1])
async def test_load_mode_shares_connections_among_devices(
    mosquitto: str, probe: ProbeFactory, connections: int
) -> None:
    listener = await probe(mosquitto, MQTT_READINGS_ALL)
    async with Simulator(
        mosquitto, "fleet", devices=50, rate=20, duration=0.5, qos=1, connections=connections
    ) as sim:
        summary = await sim.run()
    assert summary.acked == summary.sent
    got = await readings(listener, summary.sent)
    assert {r.device for r in got} == set(sim.devices)


async def test_devices_reconnect_when_the_broker_comes_back(
    tmp_path: Path, probe: ProbeFactory
) -> None:
    port = free_port()
    with run_mosquitto(tmp_path, port=port) as url:
        sim = Simulator(url, "fleet", devices=3, rate=20, duration=0, qos=1)
        await sim.__aenter__()
        runner = asyncio.create_task(sim.run(), name="sim-run")
    # The broker is gone: devices buffer and retry with backoff until it is back.
    try:
        with run_mosquitto(tmp_path, port=port) as url:
            listener = await probe(url, *(mqtt_status(d) for d in sim.devices))
            online = {(await listener.next()).topic for _ in sim.devices}
            assert online == {mqtt_status(d) for d in sim.devices}
            sim.stop()
            summary = await runner
            await sim.aclose()
    finally:
        await sim.aclose()
    assert summary.reconnects == 3
    assert (
        summary.sent + summary.dropped_buffer + summary.dropped_fault - summary.duplicates
        == summary.readings
    )
