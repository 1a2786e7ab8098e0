"""The base of every wire message: schema version, kind, W3C trace context."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared import trace
from shared.subjects import ID_PATTERN

# Bump on a breaking change of any message; decoders refuse versions they do not speak.
SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

DeviceId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
GatewayId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
SessionId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")]
# Strict: a string "41.2" or a bool is a wrong type from a sensor, not a number.
Real = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]
Millis = Annotated[int, Field(strict=True, ge=0, le=2**53)]
Scalar = str | bool | int | float | None
Params = dict[str, Scalar]

# The config of messages only a session's move or the cloud's planner uses (snapshots,
# plans): validator and serializer are built on first use instead of at import, which
# an edge daemon hosting no session never pays for (~0.2 MB of RSS, ~15 ms of start).
# The reflex path's messages are built at import (no first reading waits for it), and
# so are agent events: `shared.codec` and `shared.session.frames` build their union at
# import anyway (and the frames' decoder may take each event's validator then).
BUILT_ON_FIRST_USE = ConfigDict(defer_build=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id() -> str:
    return uuid.uuid4().hex


class Message(BaseModel):
    """Base of every wire message. Frozen: a received message is a fact, not a draft."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)
    kind: ClassVar[str] = ""

    v: int = SCHEMA_VERSION
    traceparent: str = Field(default_factory=trace.new_traceparent)

    @field_validator("traceparent")
    @classmethod
    def _valid_traceparent(cls, value: str) -> str:
        if not trace.is_valid(value):
            raise ValueError("not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")
        return value

    def to_wire(self) -> dict[str, Any]:
        """The dict the codec packs: fields plus `kind`."""
        data = self.model_dump(mode="python")
        data["kind"] = self.kind
        return data


class Part(BaseModel):
    """A nested value inside a message (no version or trace of its own)."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)
