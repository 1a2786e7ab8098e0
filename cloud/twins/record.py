"""`TwinRecord`: what the cloud stores per device in the hub KV bucket `twins`.

It is a `shared.messages.TwinState` plus the cloud's bookkeeping (applied reading
sequences, the newest reading by HLC, send and convergence times). Anyone decoding the
KV value as a plain `TwinState` gets the twin and ignores the rest (`extra="ignore"`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cloud.twins.seqwindow import SeqWindow
from shared import codec
from shared.messages import TwinState
from shared.messages.base import Count, Millis, Real


class TwinRecord(TwinState):
    # Readings applied: see `SeqWindow`. `readings` counts them, exactly once each.
    seq_floor: int = Field(default=-1, ge=-1)
    seq_ranges: list[tuple[int, int]] = Field(default_factory=list)
    # Per range: the FLEET stream sequence that opened the gap below it (`SeqWindow`).
    seq_opened: list[int] = Field(default_factory=list)
    readings: Count = 0
    # The newest reading by HLC (not the last to arrive: backlogs arrive late).
    last_seq: Count | None = None
    last_hlc: Count = 0
    last_ts_ms: Millis = 0
    last_metrics: dict[str, Real] = Field(default_factory=dict)
    # The newest `online`/`offline` status message (MQTT last will) by HLC.
    status_hlc: Count = 0
    status_online: bool = True
    reported_hlc: Count = 0
    # Desired-state delivery: when the current version was set, last sent, how often.
    desired_ms: Millis = 0
    sent_ms: Millis = 0
    sends: Count = 0
    # Convergence: the desired version last matched by a report, and how long it took.
    converged_version: Count = 0
    convergence_ms: Count | None = None

    @property
    def key(self) -> str:
        return f"{self.gw}.{self.device}"

    @property
    def window(self) -> SeqWindow:
        # A record from an older replica may lack `seq_opened`: SeqWindow counts those
        # gaps as settled, the rule it had then.
        return SeqWindow(self.seq_floor, tuple(self.seq_ranges), tuple(self.seq_opened))

    def with_window(self, window: SeqWindow) -> dict[str, Any]:
        return {
            "seq_floor": window.floor,
            "seq_ranges": list(window.ranges),
            "seq_opened": list(window.opened),
        }

    @property
    def drift(self) -> bool:
        """Desired state the edge has not reported applying yet."""
        return self.desired_version > self.reported_version

    def encode(self) -> bytes:
        return codec.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> TwinRecord:
        return codec.decode(data, cls)

    @classmethod
    def new(cls, gw: str, device: str, now_ms: int) -> TwinRecord:
        return cls(gw=gw, device=device, online=True, last_seen_ms=0, updated_ms=now_ms)
