"""`SeqGate`: a receiver delivers each event of a session once, in `seq` order.

Events may arrive twice (the WebRTC channel and the NATS log overlap around a switch),
out of order (a channel attached mid-stream is ahead of the log catching up), or from a
fenced-out owner. The gate:

- drops a seq it has delivered (a repeat),
- holds events past a gap until the gap fills (at most `hold` of them),
- drops events of an epoch lower than the highest it has delivered (the fencing rule of
  DESIGN "Edge handoff", applied to the stream),
- and lets a *higher* epoch restart the numbering at or below what it has delivered: a
  new owner that took over after a crash numbers on from the durable log, and whatever
  the dead owner streamed but never made durable is superseded. A gate that starts at
  `last` without knowing the epoch of those events (`epoch=0`) treats them as repeats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from shared.messages import AgentEventBase

MAX_HELD: Final = 4096


@dataclass(slots=True)
class GateStats:
    delivered: int = 0
    repeats: int = 0
    stale: int = 0
    rebased: int = 0
    overflow: int = 0


@dataclass(slots=True)
class SeqGate:
    last: int = 0
    epoch: int = 0
    hold: int = MAX_HELD
    stats: GateStats = field(default_factory=GateStats)
    _held: dict[int, AgentEventBase] = field(default_factory=dict)

    @property
    def gap(self) -> bool:
        """Events are waiting for an earlier seq."""
        return bool(self._held)

    def offer(self, events: Iterable[AgentEventBase]) -> list[AgentEventBase]:
        """The events now deliverable, in order."""
        out: list[AgentEventBase] = []
        for event in events:
            if event.seq == self.last + 1 and event.epoch == self.epoch and not self._held:
                self.last = event.seq  # the live path: the next seq, nothing held
                self.stats.delivered += 1
                out.append(event)
            else:
                self._take(event, out)
        return out

    def _take(self, event: AgentEventBase, out: list[AgentEventBase]) -> None:
        if event.epoch < self.epoch:
            self.stats.stale += 1
            return
        if self.epoch and event.epoch > self.epoch and event.seq <= self.last:
            self.stats.rebased += 1
            self.last = event.seq - 1
            self._held = {s: e for s, e in self._held.items() if e.epoch >= event.epoch}
        if event.seq <= self.last:
            self.stats.repeats += 1
            return
        if event.seq > self.last + 1:
            if len(self._held) < self.hold:
                self._held[event.seq] = event
            else:
                self.stats.overflow += 1  # the log will bring it again
            return
        self._deliver(event, out)
        while (nxt := self._held.pop(self.last + 1, None)) is not None:
            if nxt.epoch >= self.epoch:
                self._deliver(nxt, out)
            else:
                self.stats.stale += 1

    def _deliver(self, event: AgentEventBase, out: list[AgentEventBase]) -> None:
        self.last = event.seq
        self.epoch = max(self.epoch, event.epoch)
        self.stats.delivered += 1
        out.append(event)
