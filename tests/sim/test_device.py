"""Devices without a broker (the in-memory sender): commands, faults, determinism."""

from __future__ import annotations

from collections import deque
from random import Random

from firmware_sim import Simulator, load_scenario
from firmware_sim.config import Temperature
from firmware_sim.device import Clock, SimDevice
from firmware_sim.faults import DropoutFault, DuplicateFault, SkewFault, StuckFault
from firmware_sim.sender import MemorySender, buffer_put
from firmware_sim.summary import Counters

from shared.codec import decode, encode
from shared.messages import Command, CommandAck, Reading, now_ms

CLOCK = Clock(sim_dt=1.0, period_ms=100.0, start_ms=1_700_000_000_000, seq_start=500)


def make_device(faults: tuple[object, ...] = ()) -> tuple[SimDevice, MemorySender]:
    counters = Counters()
    sender = MemorySender(counters)
    profile = load_scenario("pump-overheat").profile[0]
    device = SimDevice(
        "pump-0",
        0,
        profile,
        seed=1,
        clock=CLOCK,
        faults=faults,  # type: ignore[arg-type]
        buffer=10,
        counters=counters,
        sender=sender,
    )
    return device, sender


def command(action: str, epoch: int = 0, session: str | None = None, **params: object) -> bytes:
    cmd = Command(
        device="pump-0",
        action=action,
        params=params,
        deadline_ms=now_ms() + 5_000,
        epoch=epoch,
        session=session,
    )  # type: ignore[arg-type]
    return encode(cmd)


def acks(sender: MemorySender) -> list[CommandAck]:
    return [decode(sent.payload, CommandAck) for sent in sender.acks]


def test_readings_carry_seq_timestamps_and_the_device() -> None:
    device, sender = make_device()
    for n in range(3):
        device.tick(n)
    readings = [decode(s.payload, Reading) for s in sender.sent]
    assert [r.seq for r in readings] == [500, 501, 502]
    assert [r.ts_ms for r in readings] == [
        CLOCK.start_ms,
        CLOCK.start_ms + 100,
        CLOCK.start_ms + 200,
    ]
    assert readings[0].device == "pump-0" and set(readings[0].metrics) == {
        "temp_c",
        "vib_rms",
        "current_a",
    }


def test_a_fan_command_is_applied_and_acknowledged() -> None:
    device, sender = make_device()
    device.command(command("fan", on=True))
    [ack] = acks(sender)
    assert ack.ok and ack.reason is None and ack.device == "pump-0"
    assert device.state().fan == 1.0


def test_refusals_are_acknowledged_with_a_reason() -> None:
    device, sender = make_device()
    device.command(command("fan", epoch=5, session="s1", on=True))
    device.command(command("fan", epoch=4, session="s1", on=False))  # a replaced owner
    device.command(command("warp", epoch=6, session="s1"))
    device.command(command("fan", epoch=1, session="s2", speed=1.0))  # another session
    device.command(command("fan", speed=1.0))  # no session (a rule, the planner): not fenced
    device.command(b"\x93garbage")  # undecodable: nothing to ack, but counted
    ok, stale, unknown, other, unfenced = acks(sender)
    assert ok.ok and not stale.ok and not unknown.ok and other.ok and unfenced.ok
    assert "stale epoch 4 < 5 for session s1" in (stale.reason or "") and "unknown action" in (
        unknown.reason or ""
    )
    assert device.state().fan == 1.0
    assert (device.counters.commands, device.counters.commands_rejected) == (6, 3)


def test_a_redelivered_command_gets_the_same_ack_and_is_applied_once() -> None:
    device, sender = make_device()
    payload = command("fan", speed=0.5)
    device.command(payload)
    device.command(payload)
    assert sender.acks[0].payload == sender.acks[1].payload


def test_reading_faults_edit_what_is_sent() -> None:
    faults = (
        StuckFault(0, 10, "temp_c"),
        SkewFault(0, 10, -50),
        DropoutFault(2, 3, 1.0),
        DuplicateFault(3, 4, 1.0),
    )
    device, sender = make_device(faults)
    for n in range(5):
        device.tick(n)
    readings = [decode(s.payload, Reading) for s in sender.sent]
    assert [r.seq for r in readings] == [500, 501, 503, 503, 504]  # 502 lost, 503 twice
    assert len({r.metrics["temp_c"] for r in readings}) == 1  # stuck
    assert readings[0].ts_ms == CLOCK.start_ms - 50
    counters = device.counters
    assert (counters.readings, counters.sent, counters.dropped_fault, counters.duplicates) == (
        5,
        5,
        1,
        1,
    )


def test_a_full_buffer_drops_the_oldest_and_counts_it() -> None:
    counters = Counters()
    buffer: deque[tuple[bytes, None]] = deque(maxlen=2)
    for n in range(5):
        buffer_put(buffer, (bytes([n]), None), counters)
    assert [item[0] for item in buffer] == [b"\x03", b"\x04"] and counters.dropped_buffer == 3


def test_device_state_reports_the_true_temperature() -> None:
    device, _ = make_device()
    device.tick(0)
    state = device.state()
    assert state.seq == 500 and state.temp_c is not None
    assert abs(state.temp_c - state.metrics["temp_c"]) < 1.0  # the reading adds only noise
    assert isinstance(load_scenario("pump-overheat").profile[0].temperature, Temperature)


async def recorded(seed: int) -> list[tuple[str, int, dict[str, float]]]:
    async with Simulator(
        None, "fleet", devices=6, seed=seed, rate=400, duration=0.05, seq_start=0
    ) as sim:
        summary = await sim.run()
    assert summary.readings == 6 * 20
    readings = [decode(s.payload, Reading) for s in sim.recorded]
    return [(r.device, r.seq, dict(r.metrics)) for r in readings]


async def test_the_same_seed_gives_the_same_readings_in_memory() -> None:
    first, again, other = await recorded(7), await recorded(7), await recorded(8)
    assert first == again
    assert first != other
    assert Random(0) is not None
