"""Rule and model updates pushed from the hub to a gateway.

The gateway checks `sha256` before it swaps anything in: an update with a bad hash or
schema is refused and reported, and the old rules/model stay in force.
"""

from __future__ import annotations

import hashlib
import json
from typing import ClassVar

from pydantic import Field, JsonValue

from shared.messages.base import GatewayId, Message, Name


def rules_digest(rules: list[dict[str, JsonValue]]) -> str:
    """sha256 of the canonical JSON of a rule list (sorted keys, no spaces)."""
    canonical = json.dumps(rules, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class RulesUpdate(Message):
    kind: ClassVar[str] = "rules_update"
    gw: GatewayId
    version: str = Field(max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rules: list[dict[str, JsonValue]]

    @property
    def digest_ok(self) -> bool:
        return rules_digest(self.rules) == self.sha256


class ModelUpdate(Message):
    """An ONNX model in the hub's `models` Object Store, named by `object_name`."""

    kind: ClassVar[str] = "model_update"
    gw: GatewayId
    name: Name
    version: str = Field(max_length=64)
    object_name: str = Field(max_length=256)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    threshold: float | None = None
