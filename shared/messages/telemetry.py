"""Sensor readings, actuator commands and their acknowledgements, reflex decisions."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, JsonValue

from shared.messages.base import (
    Count,
    DeviceId,
    GatewayId,
    Message,
    Millis,
    Name,
    Params,
    Real,
    SessionId,
    new_id,
    now_ms,
)

MAX_METRICS = 32


class Reading(Message):
    """One sample from a device. `seq` increases by one per reading, per device."""

    kind: ClassVar[str] = "reading"
    device: DeviceId
    seq: Count
    ts_ms: Millis
    metrics: Annotated[dict[Name, Real], Field(min_length=1, max_length=MAX_METRICS)]
    dclass: Name | None = None
    # Stamped by the gateway at ingest.
    gw: GatewayId | None = None
    hlc: Count | None = None


class Command(Message):
    """An actuator command. `epoch` is the fencing token of the session that issued it
    (0 when no session is involved); receivers refuse an epoch lower than the highest seen."""

    kind: ClassVar[str] = "command"
    cmd_id: str = Field(default_factory=new_id, min_length=1, max_length=64)
    device: DeviceId
    gw: GatewayId | None = None
    action: Name
    params: Params = Field(default_factory=dict)
    issued_ms: Millis = Field(default_factory=now_ms)
    deadline_ms: Millis
    epoch: Count = 0
    source: str = Field(default="", max_length=128)
    session: SessionId | None = None

    def expired(self, at_ms: int) -> bool:
        return at_ms > self.deadline_ms


class CommandAck(Message):
    """The device's answer to a command."""

    kind: ClassVar[str] = "command_ack"
    cmd_id: str = Field(min_length=1, max_length=64)
    device: DeviceId
    ok: bool
    reason: str | None = None
    # What the action produced, e.g. a ticket id or a diagnosis.
    result: dict[str, JsonValue] | None = None
    epoch: Count = 0
    ts_ms: Millis = Field(default_factory=now_ms)


class Decision(Message):
    """What the reflex engine decided and why: the audit record of a fired rule or model."""

    kind: ClassVar[str] = "decision"
    decision_id: str = Field(default_factory=new_id)
    gw: GatewayId
    device: DeviceId
    source: Literal["rule", "model"]
    name: Name
    version: str = Field(max_length=64)
    inputs: dict[str, Real] = Field(default_factory=dict)
    score: Real | None = None
    threshold: Real | None = None
    command: Command | None = None
    latency_us: Count
    ts_ms: Millis = Field(default_factory=now_ms)
    hlc: Count | None = None
    reading_seq: Count | None = None


class GatewayEvent(Message):
    """Something a gateway reports that is not a reading or a decision: a refused update,
    a device coming back, a store running full. `type` is a stable label; `data` the rest."""

    kind: ClassVar[str] = "event"
    gw: GatewayId
    device: DeviceId | None = None
    type: Name
    data: dict[str, JsonValue] = Field(default_factory=dict)
    ts_ms: Millis = Field(default_factory=now_ms)
