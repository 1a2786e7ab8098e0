"""What a gateway tells the hub about a downlink message it refused or applied.

A `GatewayEvent` of type `downlink`, published on `uplink.<gw>.ev.<gw>` (through the
leaf store, so a report made while the hub is away arrives later) and forwarded to
`fleet.<gw>.ev.<gw>`::

    GatewayEvent(gw="gw1", device=None, type="downlink",
                 data={"update": "rules", "version": "7", "refused": True,
                       "reason": "sha256 does not match the rules", "seq": 42})

`seq` is the hub DOWNLINK stream sequence of the message: with the gateway it names the
report, so a redelivered message is reported once (it is the Nats-Msg-Id key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared import codec, subjects
from shared.messages import GatewayEvent

EVENT_TYPE = "downlink"
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
    subject: str
    """The downlink subject: its kind token is the `update`, its device the device."""
    version: str | None
    reason: str | None
    """Why it was refused; None when it was applied."""
    seq: int

    @property
    def key(self) -> str:
        return f"downlink-{self.seq}"

    def event(self) -> GatewayEvent:
        parts = self.subject.split(".")
        device = parts[3] if len(parts) == 4 and subjects.is_valid_id(parts[3]) else None
        return GatewayEvent(
            gw=self.gw,
            device=device,
            type=EVENT_TYPE,
            data={
                "update": parts[2] if len(parts) > 2 else "",
                "version": self.version,
                "refused": self.reason is not None,
                "reason": self.reason,
                "seq": self.seq,
            },
        )

    def encode(self) -> bytes:
        return codec.encode(self.event())
