"""Device twins: desired state (cloud-authored, versioned) and reported state (edge)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.messages.base import Count, DeviceId, GatewayId, Message, Millis, Params, now_ms


class DesiredState(Message):
    """Cloud → edge. `version` increases with every change the cloud makes.

    `state` is the whole desired state of the device in the action vocabulary of
    `shared.actions`: each key is `"<action>.<param>"`, e.g.
    ``{"fan.on": true, "set_load.load": 0.5, "set_setpoint.setpoint": 55.0}``. The edge
    sends one `Command` per action (`fan {"on": true}`, `set_load {"load": 0.5}`, ...)
    and reports the version applied only once the device has acknowledged every one of
    them with `ok`. A key outside that form, a param the vocabulary or the guard refuses,
    a device refusal or a missing ack refuses the whole version (see `ReportedState`).
    """

    kind: ClassVar[str] = "desired"
    device: DeviceId
    gw: GatewayId
    version: Count
    state: Params = Field(default_factory=dict)
    epoch: Count = 0
    ts_ms: Millis = Field(default_factory=now_ms)


class ReportedState(Message):
    """Edge → cloud. `applied_version` is the desired version the edge has applied, and
    `state` what that version set; never a version the device has not acknowledged.

    When the edge could not apply a newer version (refused by the guard or the device,
    or not acknowledged in time) it reports again with the *old* `applied_version` and
    `state`, naming the refused one in `refused_version` and why in `reason`.
    """

    kind: ClassVar[str] = "reported"
    device: DeviceId
    gw: GatewayId
    applied_version: Count
    state: Params = Field(default_factory=dict)
    ts_ms: Millis = Field(default_factory=now_ms)
    hlc: Count | None = None
    # Added in schema version 1 without a bump: optional, and older readers ignore them.
    refused_version: Count | None = None
    reason: str | None = Field(default=None, max_length=512)


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
