"""`EventFeed`: a follower's view of a session's events — WebRTC when it can, NATS when not.

    rtc  ── dial rtc.<session>.<owner side> ──▶ frames ──┐
                                                          ├──▶ SeqGate ──▶ events (in order,
    nats ── ordered consumer on session.<id>.ev ─────────┘                 once each)
            from the last durable mark we hold + 1

The NATS consumer runs whenever the channel is not *in sync*: before it opens, while
the gate has a gap, and after it drops. "In sync" means the channel is open, we hold
every seq up to the owner's head at attach time, and nothing waits on a gap; from then
on the channel carries every event, so the consumer is stopped. Both overlap around a
switch; the gate drops the repeats. A channel counts as dropped when it closes or
nothing (not even a heartbeat) arrives for `DEAD_AFTER` heartbeats; the feed then
redials after `redial_s`.

The follower acks the last seq it holds over the channel (coalesced, `ACK_DELAY_S`):
the owner sees how far each follower got, and the acks are the follower's heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared import subjects
from shared.compat import TaskGroup
from shared.errors import DecodeError
from shared.messages import AgentEventBase
from shared.session import rtc
from shared.session.errors import ChannelError
from shared.session.frames import Frame, Mark, decode_event, pack_ack, unpack
from shared.session.gate import SeqGate
from shared.session.stream import DEAD_AFTER, HEARTBEAT_S
from shared.session.tasks import stop_task

log = logging.getLogger(__name__)

ACK_DELAY_S: Final = 0.05
REDIAL_S: Final = 2.0
# A failed consumer create is tried again after this, doubling up to the max.
SUBSCRIBE_RETRY_S: Final = 0.2
SUBSCRIBE_RETRY_MAX_S: Final = 5.0

Listener = Callable[[AgentEventBase], None]


@dataclass(slots=True)
class FeedStats:
    rtc_events: int = 0
    nats_events: int = 0
    dials: int = 0
    dial_failures: int = 0
    drops: int = 0
    bad_frames: int = 0


class EventFeed:
    """An async context manager and an async iterator of events."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        session: str,
        *,
        side: str = "cloud",
        after: int = 0,
        epoch: int = 0,
        mark: Mark | None = None,
        use_rtc: bool = True,
        heartbeat_s: float = HEARTBEAT_S,
        redial_s: float | None = REDIAL_S,
    ) -> None:
        self.session = session
        self.gate = SeqGate(last=after, epoch=epoch)
        self.stats = FeedStats()
        self._nc, self._js = nc, js
        self._side = side
        self._pos = mark.log_pos if mark is not None and mark.seq <= after else 0
        self._use_rtc = use_rtc
        self._heartbeat_s = heartbeat_s
        self._redial_s = redial_s
        self._queue: asyncio.Queue[AgentEventBase] | None = None  # made by __aiter__
        self._listeners: list[Listener] = []
        self._peer: rtc.RtcPeer | None = None
        self._head: int | None = None
        self._heard_at = 0.0
        self._changed = asyncio.Event()
        self._pieces: list[bytes] = []
        self._ack: asyncio.TimerHandle | None = None
        self._synced = False  # `_in_sync()` as of the last change that could move it
        self._task: asyncio.Task[None] | None = None

    @property
    def log_pos(self) -> int:
        """A log position all of whose events this feed holds (where NATS resumes)."""
        return self._pos

    @property
    def via(self) -> str:
        """`rtc` while the channel carries the stream, else `nats`."""
        return "rtc" if self._synced else "nats"

    async def __aenter__(self) -> EventFeed:
        self._task = asyncio.create_task(self._main(), name=f"feed:{self.session}")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> EventFeed:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self

    async def __anext__(self) -> AgentEventBase:
        return await self.__aiter__()._queue.get()  # type: ignore[union-attr]

    def listen(self, listener: Listener) -> Callable[[], None]:
        # Copy on write: `_deliver` iterates the list without copying it per event.
        self._listeners = [*self._listeners, listener]

        def undo() -> None:
            self._listeners = [item for item in self._listeners if item is not listener]

        return undo

    async def wait_via(self, via: str) -> None:
        while self.via != via:
            changed = self._changed
            await changed.wait()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _main(self) -> None:
        async with TaskGroup() as group:
            group.create_task(self._nats_loop(), name=f"feed-nats:{self.session}")
            if self._use_rtc:
                group.create_task(self._rtc_loop(), name=f"feed-rtc:{self.session}")

    # -- delivery ------------------------------------------------------------------

    def _deliver(self, events: list[AgentEventBase], source: str) -> None:
        synced = self._synced
        ready = self.gate.offer(events)
        if source == "rtc":
            self.stats.rtc_events += len(ready)
        else:
            self.stats.nats_events += len(ready)
        queue, listeners = self._queue, self._listeners
        for event in ready:
            if queue is not None:
                queue.put_nowait(event)
            for listener in listeners:
                listener(event)
        # In sync stays in sync while no gap opens (`last` only grows): the live path
        # skips the full check.
        if not synced or self.gate.gap:
            self._resync()

    def _resync(self) -> None:
        synced = self._in_sync()
        if synced != self._synced:
            self._synced = synced
            self._signal()

    def _in_sync(self) -> bool:
        head = self._head
        return (
            self._peer is not None
            and head is not None
            and self.gate.last >= head
            and not self.gate.gap
        )

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- NATS ----------------------------------------------------------------------

    async def _nats_loop(self) -> None:
        sub = None
        try:
            while True:
                need = not self._synced
                if need and sub is None:
                    sub = await self._subscribe_until_it_holds()
                elif not need and sub is not None:
                    await sub.unsubscribe()
                    sub = None
                changed = self._changed
                await changed.wait()
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):  # the connection may be closing
                    await sub.unsubscribe()

    async def _subscribe_until_it_holds(self) -> JetStreamContext.PushSubscription:
        """A consumer create can time out while the hub is busy or restarting; the feed
        must outlive that (it is the only path while the channel is not in sync), so it
        tries again with backoff instead of ending the follower."""
        delay = SUBSCRIBE_RETRY_S
        failing = False
        while True:
            try:
                sub = await self._subscribe()
            except (NatsError, asyncio.TimeoutError) as exc:
                if not failing:
                    log.warning("following %s from the log: %r; retrying", self.session, exc)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, SUBSCRIBE_RETRY_MAX_S)
                continue
            if failing:
                log.info("following %s from the log again", self.session)
            return sub

    async def _subscribe(self) -> JetStreamContext.PushSubscription:
        start = self._pos + 1 if self._pos else None
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
            opt_start_seq=start,
        )
        return await self._js.subscribe(
            subjects.session_events(self.session),
            stream=subjects.SESSIONS_STREAM,
            cb=self._on_log,
            ordered_consumer=True,
            config=config,
        )

    async def _on_log(self, msg: Msg) -> None:
        try:
            events = unpack(msg.data).events
        except DecodeError as exc:
            self.stats.bad_frames += 1
            log.warning("bad frame in the log of %s: %s", self.session, exc)
            return
        self._deliver(events, "nats")
        if not events or events[-1].seq <= self.gate.last:
            self._pos = max(self._pos, msg.metadata.sequence.stream)

    # -- WebRTC --------------------------------------------------------------------

    async def _rtc_loop(self) -> None:
        while True:
            self.stats.dials += 1
            try:
                peer = await rtc.dial(
                    self._nc,
                    self.session,
                    self._side,
                    after=self.gate.last,
                    on_message=self._on_frame,
                )
            except ChannelError as exc:
                self.stats.dial_failures += 1
                log.info("no WebRTC channel for %s, staying on NATS: %s", self.session, exc)
            else:
                await self._run_peer(peer)
            if self._redial_s is None:
                return
            await asyncio.sleep(self._redial_s)

    async def _run_peer(self, peer: rtc.RtcPeer) -> None:
        loop = asyncio.get_running_loop()
        dead_s = self._heartbeat_s * DEAD_AFTER
        self._peer = peer
        self._heard_at = loop.time()
        self._resync()
        try:
            while not peer.closed.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(peer.closed.wait(), dead_s)
                if loop.time() - self._heard_at > dead_s:
                    log.info("WebRTC channel of %s went quiet", self.session)
                    break
        finally:
            self.stats.drops += 1
            self._peer, self._head, self._pieces = None, None, []
            if self._ack is not None:
                self._ack.cancel()
                self._ack = None
            self._resync()
            await peer.aclose()

    def _on_frame(self, data: bytes | str) -> None:
        loop = asyncio.get_running_loop()
        self._heard_at = loop.time()
        try:
            frame = unpack(data)
            events = frame.events or self._piece(frame)
        except DecodeError as exc:
            self.stats.bad_frames += 1
            log.warning("bad frame on the channel of %s: %s", self.session, exc)
            return
        if frame.head is not None:
            self._head = frame.head
            self._resync()
        self._deliver(events, "rtc")
        if frame.mark is not None and frame.mark.seq <= self.gate.last:
            self._pos = max(self._pos, frame.mark.log_pos)
        if self._ack is None:
            self._ack = loop.call_later(ACK_DELAY_S, self._send_ack)

    def _piece(self, frame: Frame) -> list[AgentEventBase]:
        if frame.piece is None:
            return []
        index, count, chunk = frame.piece
        if index == 0:
            self._pieces = []
        self._pieces.append(chunk)
        if index + 1 < count:
            return []
        data, self._pieces = b"".join(self._pieces), []
        return [decode_event(data)]

    def _send_ack(self) -> None:
        self._ack = None
        if self._peer is not None:
            self._peer.send(pack_ack(self.gate.last))
