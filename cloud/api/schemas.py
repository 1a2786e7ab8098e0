"""Request and response bodies of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from cloud.twins.record import TwinRecord
from cloud.twins.view import Rollup

# Desired-state keys are operator-chosen names: a little looser than metric names.
StateKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")]
# JSON allows no NaN, but Python's parser does: refuse it here, as the wire models do.
StateValue = (
    Annotated[str, StringConstraints(max_length=1024)]
    | bool
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | None
)
DesiredBody = Annotated[dict[StateKey, StateValue], Field(max_length=64)]


class ErrorOut(BaseModel):
    error: str = Field(description="the error's type, e.g. not_found")
    reason: str = Field(description="what was wrong, for a person")
    detail: list[dict[str, Any]] | None = None


class LastReading(BaseModel):
    seq: int
    hlc: int
    ts_ms: int
    metrics: dict[str, float]


class DeviceSummary(BaseModel):
    gw: str
    device: str
    online: bool
    last_seen_ms: int
    desired_version: int
    reported_version: int
    converged: bool
    convergence_ms: int | None = Field(
        description="desired change → matching reported version, for the last converged one"
    )
    readings: int = Field(description="readings applied (each exactly once)")
    last_reading: LastReading | None = Field(description="the newest reading by HLC")

    @classmethod
    def of(cls, twin: TwinRecord) -> DeviceSummary:
        return cls(**summary_fields(twin))


def summary_fields(twin: TwinRecord) -> dict[str, Any]:
    last = None
    if twin.last_seq is not None:
        last = LastReading(
            seq=twin.last_seq, hlc=twin.last_hlc, ts_ms=twin.last_ts_ms, metrics=twin.last_metrics
        )
    return {
        "gw": twin.gw,
        "device": twin.device,
        "online": twin.online,
        "last_seen_ms": twin.last_seen_ms,
        "desired_version": twin.desired_version,
        "reported_version": twin.reported_version,
        "converged": twin.converged,
        "convergence_ms": twin.convergence_ms,
        "readings": twin.readings,
        "last_reading": last,
    }


class ReadingOut(BaseModel):
    seq: int
    hlc: int
    at_ms: int = Field(description="measurement time: device time when plausible, else gateway")
    ts_ms: int = Field(description="device time")
    metrics: dict[str, float]


class RollupOut(BaseModel):
    metric: str
    minute_ms: int = Field(description="start of the minute of measurement")
    min: float
    max: float
    mean: float
    count: int

    @classmethod
    def of(cls, row: Rollup) -> RollupOut:
        return cls(
            metric=row["metric"], minute_ms=row["minute_ms"], min=row["min"],
            max=row["max"], mean=row["mean"], count=row["count"],
        )  # fmt: skip


class DeviceOut(DeviceSummary):
    desired: dict[str, Any]
    reported: dict[str, Any]
    desired_ms: int
    sent_ms: int
    sends: int
    recent: list[ReadingOut] = Field(description="newest first, by HLC")
    rollups: list[RollupOut] = Field(description="per minute and metric, oldest first")


class FleetOut(BaseModel):
    replica: str
    counts: dict[str, int]
    devices: list[DeviceSummary]


class DesiredOut(BaseModel):
    gw: str
    device: str
    version: int
    state: dict[str, Any]


class PlanRequest(BaseModel):
    trigger: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        default="schedule",
        description="KIND[:GATEWAY[/DEVICE]], e.g. anomaly:gw1/pump-1; schedule = a full round",
    )
    reason: Annotated[str, StringConstraints(max_length=2048)] = "requested through the API"
