"""The edge daemon's exception tree, rooted under `shared.errors.BatonError`.

EdgeError
├── RuleError          a rule or rules update is invalid (name, reason); old rules stay
├── ModelError         an ONNX model or model update cannot be loaded or fails its hash
├── GuardRefused       an actuation was refused by the safety guard or the fencing epoch
├── UplinkError        the leaf or the hub refused or timed out a publish (retryable)
└── StoreError         local SQLite state could not be written

Refused payloads stay in `shared.errors`' DecodeError branch (their `.reason` is the
quarantine label); the edge adds one leaf there:

InvalidMessage
└── DeviceMismatch     the payload names another device than its topic (`device_mismatch`)
"""

from __future__ import annotations

from shared.errors import BatonError, InvalidMessage


class EdgeError(BatonError):
    """Root of the edge daemon's errors."""


class RuleError(EdgeError):
    def __init__(self, reason: str, *, rule: str | None = None) -> None:
        self.rule = rule
        super().__init__(f"rule {rule}: {reason}" if rule else reason)


class ModelError(EdgeError):
    pass


class GuardRefused(EdgeError):
    """`reason` is the counter label: not_allowed, out_of_bounds, bad_params, stale_epoch,
    expired."""

    def __init__(self, detail: str, *, reason: str = "refused") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class UplinkError(EdgeError):
    retryable = True


class StoreError(EdgeError):
    pass


class DeviceMismatch(InvalidMessage):
    reason = "device_mismatch"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="device")
