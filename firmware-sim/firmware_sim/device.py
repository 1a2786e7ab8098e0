"""One simulated device: its plant, sequence number, faults, command handling and buffer.

A device is what a microcontroller's main loop would be: on every tick read the sensors,
stamp a sequence number and a timestamp, and hand the payload to the network (`Sender`);
on a command, check it, actuate, and acknowledge.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from random import Random

from firmware_sim.config import Profile
from firmware_sim.faults import ReadingFault, Tick
from firmware_sim.payloads import BAD_PAYLOADS, pack, reading_dict
from firmware_sim.physics import Plant
from firmware_sim.sender import Outgoing, Sender
from firmware_sim.summary import Counters
from shared.codec import decode, encode
from shared.errors import DecodeError
from shared.messages import Command, CommandAck, now_ms
from shared.trace import child_of

log = logging.getLogger(__name__)

# Acks of recent commands, re-sent as-is when a QoS 1 redelivery brings one again.
_REMEMBERED_COMMANDS = 64


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A snapshot of one device, for tests and the demo."""

    device: str
    dclass: str
    seq: int | None  # the last sequence number used; None before the first reading
    sim_s: float  # simulated seconds since the start
    fan: float
    valve: float
    pump_on: bool
    load: float  # share of rated load (`set_load`)
    setpoint: float | None  # what the device's own fan loop holds (`set_setpoint`)
    temp_c: float | None  # the body's true temperature (no sensor noise or drift)
    wear: float | None  # bearing wear, 0 (new) .. 1 (failed)
    failed: bool
    metrics: dict[str, float]  # the last reading as measured, before faults
    buffered: int  # payloads waiting for the connection


@dataclass(frozen=True, slots=True)
class Clock:
    """How tick numbers map to simulated time, wire timestamps and sequence numbers."""

    sim_dt: float  # simulated seconds per tick
    period_ms: float  # wall milliseconds per tick
    start_ms: int  # wall clock of tick 0
    seq_start: int


class SimDevice:
    __slots__ = (
        "_acks",
        "_epochs",
        "buffer",
        "clock",
        "counters",
        "dclass",
        "faults",
        "id",
        "index",
        "last",
        "last_tick",
        "plant",
        "rng",
        "sender",
    )

    def __init__(
        self,
        device_id: str,
        index: int,
        profile: Profile,
        *,
        seed: int,
        clock: Clock,
        faults: tuple[ReadingFault, ...],
        buffer: int,
        counters: Counters,
        sender: Sender,
    ) -> None:
        self.id = device_id
        self.index = index
        self.dclass = profile.dclass or profile.name
        self.plant = Plant(profile, clock.sim_dt)
        self.rng = Random(seed + index)  # one stream per device: independent of the others
        self.clock = clock
        self.faults = faults
        self.buffer: deque[Outgoing] = deque(maxlen=buffer)
        self.counters = counters
        self.sender = sender
        self.last: dict[str, float] = {}
        self.last_tick = -1
        self._epochs: dict[str, int] = {}  # highest epoch seen per session
        self._acks: OrderedDict[str, bytes] = OrderedDict()

    def tick(self, n: int) -> None:
        """Take reading number `n` (0-based) and send it."""
        clock = self.clock
        metrics = self.plant.step(n * clock.sim_dt, self.rng)
        self.last, self.last_tick = metrics, n
        self.counters.readings += 1
        seq = clock.seq_start + n
        ts_ms = clock.start_ms + int(n * clock.period_ms)
        if self.faults:
            self._tick_with_faults(n, seq, ts_ms, metrics)
        else:
            good = reading_dict(self.id, seq, ts_ms, metrics, self.dclass)
            self.sender.send(self, pack(good), None)

    def _tick_with_faults(self, n: int, seq: int, ts_ms: int, metrics: dict[str, float]) -> None:
        tick = Tick(dict(metrics))
        for fault in self.faults:
            if fault.start <= n < fault.end:
                fault.apply(tick, self.rng)
        good = reading_dict(self.id, seq, max(0, ts_ms + tick.skew_ms), tick.metrics, self.dclass)
        payload = pack(good)
        if tick.copies == 0:
            self.counters.dropped_fault += 1
        elif tick.copies == 2:
            self.counters.duplicates += 1
        for _ in range(tick.copies):
            self.sender.send(self, payload, None)
        for kind in tick.bad:
            self.sender.send(self, BAD_PAYLOADS[kind](good), kind)

    def command(self, data: bytes) -> None:
        """Handle a payload from the command topic and acknowledge it."""
        self.counters.commands += 1
        try:
            cmd = decode(data, Command)
        except DecodeError as exc:
            # Without a decodable cmd_id there is nothing to acknowledge.
            self.counters.commands_rejected += 1
            log.warning("%s: refused command payload: %s", self.id, exc)
            return
        ack = self._acks.get(cmd.cmd_id) or self._execute(cmd)
        self.sender.send_ack(self, ack)

    def _execute(self, cmd: Command) -> bytes:
        reason = self._refusal(cmd)
        if reason is None:
            reason = self.plant.actuate(cmd.action, cmd.params)
        if reason is not None:
            self.counters.commands_rejected += 1
            log.info("%s: refused %s: %s", self.id, cmd.action, reason)
        ack = CommandAck(
            cmd_id=cmd.cmd_id,
            device=self.id,
            ok=reason is None,
            reason=reason,
            epoch=cmd.epoch,
            traceparent=child_of(cmd.traceparent),
        )
        payload = encode(ack)
        self._acks[cmd.cmd_id] = payload
        if len(self._acks) > _REMEMBERED_COMMANDS:
            self._acks.popitem(last=False)
        return payload

    def _refusal(self, cmd: Command) -> str | None:
        if cmd.device != self.id:
            return f"command is for {cmd.device}, not {self.id}"
        if cmd.session is not None:
            # Fencing (DESIGN, "Edge handoff"): a lower epoch comes from a session owner
            # that has been replaced. A higher one is recorded even if a later check
            # refuses the command: it proves a newer owner. No session: not fenced.
            highest = self._epochs.get(cmd.session, 0)
            if cmd.epoch < highest:
                return f"stale epoch {cmd.epoch} < {highest} for session {cmd.session}"
            self._epochs[cmd.session] = cmd.epoch
        if cmd.expired(now_ms()):
            return "deadline passed"
        return None

    def state(self) -> DeviceState:
        plant = self.plant
        bearing = plant.bearing
        return DeviceState(
            device=self.id,
            dclass=self.dclass,
            seq=self.clock.seq_start + self.last_tick if self.last_tick >= 0 else None,
            sim_s=max(0, self.last_tick) * self.clock.sim_dt,
            fan=plant.act.fan,
            valve=plant.act.valve,
            pump_on=plant.act.pump_on,
            load=plant.act.load,
            setpoint=plant.act.setpoint,
            temp_c=plant.thermal.temp if plant.thermal is not None else None,
            wear=bearing.wear if bearing is not None else None,
            failed=bearing.failed if bearing is not None else False,
            metrics=dict(self.last),
            buffered=len(self.buffer),
        )
