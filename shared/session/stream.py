"""The owner's side of a session's event stream: number every event, then fan it out.

    agent ──▶ EventStream.emit ──┬──▶ EventLog (SESSIONS, durable, CAS appends)
              seq, epoch         ├──▶ ChannelSink per WebRTC follower (edge, browser)
                                 └──▶ local listeners (a chat on the owner's own side)

Channels get an event before the log has it: the live path never waits for a disk.
A follower learns from the `w` mark in its frames how far the log has caught up, which
is where it resumes from NATS if its channel drops (`feed`).

`ChannelSink` sends an event at once while aiortc has little queued (the latency of a
bare channel, one event per message) and otherwise coalesces what arrives into frames
of up to `frames.FRAME_BYTES` until the queue drains: aiortc pays per message, not per
byte, so a fast producer gets big frames and a slow one gets no delay.
A recent window of events (`RING_BYTES`) is kept so a follower that attaches or
re-attaches a little behind is caught up from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Final

from shared.errors import DecodeError
from shared.messages import AgentEventBase
from shared.session.frames import (
    FRAME_BYTES,
    PIECE_BYTES,
    Mark,
    encode_event,
    pack,
    pack_beat,
    pack_json,
    pack_one,
    pack_pieces,
    unpack,
)
from shared.session.log import EventLog
from shared.session.rtc import Format, RtcPeer

log = logging.getLogger(__name__)

RING_BYTES: Final = 1024 * 1024
# aiortc queues what is sent while earlier data waits for its SACK. Up to this much
# queued, an event goes out at once (the latency of a bare channel); past it, events
# coalesce into frames until aiortc's queue drains to it ("bufferedamountlow").
QUEUED_BYTES: Final = 2 * 1024
# The sender speaks at least this often (a heartbeat when idle); a follower that hears
# nothing for DEAD_AFTER beats calls the channel dead and falls back to NATS.
HEARTBEAT_S: Final = 1.0
DEAD_AFTER: Final = 3

Listener = Callable[[AgentEventBase], None]


class EventStream:
    """Stamps `session`, `seq` and `epoch` on each event and hands it to every sink."""

    def __init__(self, session: str, epoch: int, log: EventLog, *, last_seq: int) -> None:
        self.session = session
        self.epoch = epoch
        self.last_seq = last_seq
        self.log = log
        self._sinks: list[ChannelSink] = []
        self._listeners: list[Listener] = []
        self._ring: deque[tuple[int, bytes, AgentEventBase]] = deque()
        self._ring_bytes = 0

    def emit(self, event: AgentEventBase) -> AgentEventBase:
        """Send one event; it keeps the agent's numbering (the engine numbers from the
        snapshot's `last_seq`, as we do). A seq ahead of ours is taken as it is: the
        agent said things outside this stream (its own audit published them); a seq at
        or behind ours would repeat one, and is re-stamped."""
        seq = max(self.last_seq + 1, event.seq)
        stamped = event
        if event.seq != seq or event.epoch != self.epoch or event.session != self.session:
            if event.seq != seq:
                log.warning("session %s: event seq %d re-stamped %d", self.session, event.seq, seq)
            update = {"session": self.session, "seq": seq, "epoch": self.epoch}
            stamped = event.model_copy(update=update)
        data = encode_event(stamped)
        self.last_seq = seq
        self._remember(seq, data, stamped)
        for sink in self._sinks:
            sink.push(seq, data, stamped)
        self.log.push(seq, data)
        for listener in self._listeners:
            listener(stamped)
        return stamped

    def resync(self, seq: int) -> None:
        """The agent has numbered events up to `seq` (some of them not through us)."""
        self.last_seq = max(self.last_seq, seq)

    def attach(self, sink: ChannelSink, after: int) -> None:
        """Add a follower's sink: tell it our head, replay the window after `after`."""
        sink.hello(self.last_seq)
        for seq, data, event in self._ring:
            if seq > after:
                sink.push(seq, data, event)
        self._sinks.append(sink)

    @property
    def sinks(self) -> tuple[ChannelSink, ...]:
        """The followers' channels attached now."""
        return tuple(self._sinks)

    def detach(self, sink: ChannelSink) -> None:
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)

    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def recent(self, after: int) -> list[AgentEventBase]:
        return [event for seq, _, event in self._ring if seq > after]

    def _remember(self, seq: int, data: bytes, event: AgentEventBase) -> None:
        self._ring.append((seq, data, event))
        self._ring_bytes += len(data)
        while self._ring_bytes > RING_BYTES and len(self._ring) > 1:
            self._ring_bytes -= len(self._ring.popleft()[1])


class ChannelSink:
    """One follower's WebRTC channel; `run()` until the channel or the follower dies."""

    def __init__(
        self,
        peer: RtcPeer,
        log: EventLog,
        *,
        fmt: Format = "msgpack",
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.peer = peer
        self.acked = 0
        self._log = log
        self._fmt = fmt
        self._heartbeat_s = heartbeat_s
        self._pending: list[tuple[bytes, AgentEventBase]] = []
        self._wake = asyncio.Event()
        self._heard = asyncio.Event()
        self._sent_mark = Mark()
        peer.on_message(self._on_message)
        if peer.channel is not None:
            peer.channel.bufferedAmountLowThreshold = QUEUED_BYTES
            peer.channel.on("bufferedamountlow", self._wake.set)

    def hello(self, head: int) -> None:
        """The first frame: the owner's last seq now (the window's replay follows)."""
        self.peer.send(pack_beat(self._mark(), head=head))

    def push(self, seq: int, data: bytes, event: AgentEventBase) -> None:
        if self.peer.closed.is_set():
            return
        if self._pending or len(data) > PIECE_BYTES or self._buffered() > QUEUED_BYTES:
            self._pending.append((data, event))
            self._wake.set()
        elif self._fmt == "msgpack" and self._log.mark is self._sent_mark:
            self.peer.send(pack_one(data))  # the live path: one event, nothing queued
        else:
            self._send([(data, event)])

    async def run(self) -> None:
        """Flush coalesced frames and send heartbeats until the channel closes or the
        follower stops answering (its acks are its heartbeats)."""
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while not self.peer.closed.is_set():
            idle = False
            try:
                await asyncio.wait_for(self._wake.wait(), self._heartbeat_s)
            except asyncio.TimeoutError:
                idle = True
            self._wake.clear()
            if self._heard.is_set():
                self._heard.clear()
                quiet_since = loop.time()
            elif loop.time() - quiet_since > self._heartbeat_s * DEAD_AFTER:
                log.info("follower stopped answering; closing its channel")
                return
            if idle and not self._pending:
                self.peer.send(pack_beat(self._mark()))
            self._flush()

    def _flush(self) -> None:
        if self._buffered() > QUEUED_BYTES or not self._pending:
            return  # `bufferedamountlow` wakes us when the channel has drained
        batch: list[tuple[bytes, AgentEventBase]] = []
        size = 0
        while self._pending and (not batch or size + len(self._pending[0][0]) <= FRAME_BYTES):
            item = self._pending.pop(0)
            batch.append(item)
            size += len(item[0])
        self._send(batch)
        if self._pending:
            self._wake.set()

    def _send(self, batch: list[tuple[bytes, AgentEventBase]]) -> None:
        mark = self._mark()
        if self._fmt == "json":
            self.peer.send(pack_json([event for _, event in batch], mark))
        elif len(batch) == 1 and len(batch[0][0]) > PIECE_BYTES:
            for piece in pack_pieces(batch[0][0]):
                self.peer.send(piece)
            if mark is not None:
                self.peer.send(pack_beat(mark))
        elif len(batch) == 1 and mark is None:
            self.peer.send(pack_one(batch[0][0]))  # the live path's usual frame
        else:
            self.peer.send(pack([data for data, _ in batch], mark))

    def _mark(self) -> Mark | None:
        mark = self._log.mark
        if mark is self._sent_mark:  # the log replaces its mark on every append
            return None
        self._sent_mark = mark
        return mark

    def _buffered(self) -> int:
        channel = self.peer.channel
        return channel.bufferedAmount if channel is not None else 0

    def _on_message(self, data: bytes | str) -> None:
        self._heard.set()
        try:
            frame = unpack(data)
        except DecodeError as exc:  # a follower's bad bytes: say so, keep streaming
            log.warning("bad frame from a follower: %s", exc)
            return
        if frame.ack is not None:
            self.acked = max(self.acked, frame.ack)
