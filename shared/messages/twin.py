"""Device twins: desired state (cloud-authored, versioned) and reported state (edge)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.messages.base import Count, DeviceId, GatewayId, Message, Millis, Params, now_ms


class DesiredState(Message):
    """Cloud → edge. `version` increases with every change the cloud makes."""

    kind: ClassVar[str] = "desired"
    device: DeviceId
    gw: GatewayId
    version: Count
    state: Params = Field(default_factory=dict)
    epoch: Count = 0
    ts_ms: Millis = Field(default_factory=now_ms)


class ReportedState(Message):
    """Edge → cloud. `applied_version` is the desired version the edge has applied."""

    kind: ClassVar[str] = "reported"
    device: DeviceId
    gw: GatewayId
    applied_version: Count
    state: Params = Field(default_factory=dict)
    ts_ms: Millis = Field(default_factory=now_ms)
    hlc: Count | None = None


class TwinState(Message):
    """Both halves of a twin, as the cloud keeps it in the `twins` KV bucket."""

    kind: ClassVar[str] = "twin"
    device: DeviceId
    gw: GatewayId
    desired: Params = Field(default_factory=dict)
    desired_version: Count = 0
    reported: Params = Field(default_factory=dict)
    reported_version: Count = 0
    online: bool = True
    last_seen_ms: Millis = 0
    updated_ms: Millis = Field(default_factory=now_ms)

    @property
    def converged(self) -> bool:
        return self.reported_version >= self.desired_version
