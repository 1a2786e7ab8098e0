"""The seam between a device and the network: a `Sender`, and its in-memory twin.

A device hands every payload to its sender; the MQTT `Link` publishes it or keeps it in
the device's bounded buffer while disconnected. `MemorySender` records what would have
been published, so physics, faults and determinism are testable without a broker.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from firmware_sim.config import PayloadKind
from firmware_sim.summary import Counters

if TYPE_CHECKING:
    from firmware_sim.device import SimDevice

# (payload, None for a reading or the kind of a deliberately bad payload)
Outgoing = tuple[bytes, PayloadKind | None]


class Sender(Protocol):
    def send(self, device: SimDevice, payload: bytes, bad: PayloadKind | None) -> None:
        """Publish a reading (`bad` None) or a bad payload on the device's reading topic."""

    def send_ack(self, device: SimDevice, payload: bytes) -> None:
        """Publish a CommandAck on the device's ack topic."""


def buffer_put(buffer: deque[Outgoing], item: Outgoing, counters: Counters) -> None:
    """Keep `item` while offline; a full buffer drops its oldest entry, counted."""
    if len(buffer) == buffer.maxlen:
        counters.dropped_buffer += 1
    buffer.append(item)


@dataclass(frozen=True, slots=True)
class Sent:
    device: str
    payload: bytes
    bad: PayloadKind | None


class MemorySender:
    """Records payloads in order instead of publishing them (always "connected")."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.sent: list[Sent] = []
        self.acks: list[Sent] = []

    def send(self, device: SimDevice, payload: bytes, bad: PayloadKind | None) -> None:
        if bad is None:
            self.counters.sent += 1
        else:
            self.counters.count_bad(bad)
        self.sent.append(Sent(device.id, payload, bad))

    def send_ack(self, device: SimDevice, payload: bytes) -> None:
        self.acks.append(Sent(device.id, payload, None))
