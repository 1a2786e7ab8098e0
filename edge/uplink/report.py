"""What a gateway tells the hub about a downlink message it refused or applied.

Published on `uplink.<gw>.ev.<gw>` (through the leaf store, so a report made while the
hub is away arrives later) and forwarded to `fleet.<gw>.ev.<gw>`. JSON, so an operator
can read it with `nats sub 'fleet.*.ev.*'`::

    {"event": "downlink", "gw": "gw1", "update": "rules", "version": "7",
     "refused": true, "reason": "sha256 does not match the rules",
     "seq": 42, "ts_ms": 1700000000000}

`seq` is the hub DOWNLINK stream sequence of the message: with the gateway it names the
report, so a redelivered message is reported once (it is the Nats-Msg-Id key).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Protocol

from shared.messages import now_ms

EVENT = "downlink"
KIND = "ev"  # subjects.UPLINK_TYPES: other gateway events


class EventSink(Protocol):
    """Where reports go: `Uplink.submit` satisfies it."""

    def submit(
        self,
        kind: str,
        device: str,
        key: str | int,
        payload: bytes,
        *,
        traceparent: str | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class DownlinkReport:
    gw: str
    update: str
    version: str | None
    refused: bool
    reason: str | None
    seq: int
    event: str = EVENT
    ts_ms: int = field(default_factory=now_ms)

    @property
    def key(self) -> str:
        return f"downlink-{self.seq}"

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()
