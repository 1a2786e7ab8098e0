"""The edge daemon's exception tree, rooted under `shared.errors.BatonError`.

EdgeError
├── RuleError          a rule or rules update is invalid (name, reason); old rules stay
├── ModelError         an ONNX model or model update cannot be loaded or fails its hash
├── GuardRefused       an actuation was refused by the safety guard or the fencing epoch
├── UplinkError        the leaf or the hub refused or timed out a publish (retryable)
└── StoreError         local SQLite state could not be written
"""

from __future__ import annotations

from shared.errors import BatonError


class EdgeError(BatonError):
    """Root of the edge daemon's errors."""


class RuleError(EdgeError):
    def __init__(self, reason: str, *, rule: str | None = None) -> None:
        self.rule = rule
        super().__init__(f"rule {rule}: {reason}" if rule else reason)


class ModelError(EdgeError):
    pass


class GuardRefused(EdgeError):
    pass


class UplinkError(EdgeError):
    retryable = True


class StoreError(EdgeError):
    pass
