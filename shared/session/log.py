"""A session's durable event log: frames on `session.<id>.ev` in the hub's SESSIONS stream.

The log is the session's history (the audit the DESIGN asks for) and the NATS fallback of
the live stream: a receiver whose WebRTC channel drops reads it from its last `Mark`.

`EventLog` is the owner's appender. Events pushed while an append is in flight are
coalesced into the next frame, so the log keeps up with a fast agent at one publish per
frame. Every append is a compare-and-set on the subject's last sequence
(`Nats-Expected-Last-Subject-Sequence`, ADR-8): once a new owner has appended, a
fenced-out old owner's append fails, so the log never interleaves two owners. A publish
that timed out is retried with the same `Nats-Msg-Id`, which JetStream de-duplicates
within the stream's window (`streams.DUPLICATE_WINDOW_S`) before the CAS check.

A hub that does not take appends (an outage, a leaf link down) is waited out: the frame
is retried, backing off to `RETRY_S[-1]`, while the lease is still ours, for up to
`give_up_s` (the runner passes its lease TTL). Meanwhile events queue and a checkpoint
waits, and the owner goes on as soon as appends work again. Only past `give_up_s`, or
once fenced, does the log fail for good (`failed`): the runner then stops renewing its
lease, so it runs out and a peer (or this host, anew) reclaims the session. Giving up
after the first few tries, while the lease was still renewed, left a session that no
one acted for and no one could take back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Final

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header
from nats.js.errors import APIError, NotFoundError

from shared import subjects
from shared.compat import timeout
from shared.errors import DecodeError, TransportError
from shared.messages import AgentEventBase
from shared.session.errors import LeaseLost, SessionError
from shared.session.frames import Mark, pack, unpack
from shared.session.tasks import stop_task

log = logging.getLogger(__name__)

# A log frame may be much larger than a channel frame: one publish per 128 KiB.
LOG_FRAME_BYTES: Final = 128 * 1024
RETRY_S: Final = (0.05, 0.2, 1.0)
# The appender waits this long before each publish: the live channel goes first, and
# what arrives meanwhile becomes one frame (one publish, one fsync on the hub), so the
# log costs at most ~1/LINGER_S publishes a second however fast the agent talks.
# `flush()` (a handoff, a checkpoint) skips the wait. Events are durable this much later
# than they are live; an owner that dies in between has them superseded (`gate`).
LINGER_S: Final = 0.01
# Closing waits this long for the hub to take what is pending (the rest is dropped: a
# successor numbers on from the log's end).
DRAIN_S: Final = 2.0
# How long appends may fail before the log gives up (when the owner does not say).
GIVE_UP_S: Final = 10.0
# JetStream error codes of a failed expected-last-sequence check.
WRONG_LAST: Final = (10071, 10164)
_READ_BATCH: Final = 256
_READ_TIMEOUT_S: Final = 5.0
_CONSUMER_IDLE_S: Final = 10.0


class EventLog:
    """The owner's appender; an async context manager (`aclose()` drains first)."""

    def __init__(
        self,
        js: JetStreamContext,
        session: str,
        *,
        epoch: int,
        start: Mark,
        still_owner: Callable[[], bool] = lambda: True,
        give_up_s: float = GIVE_UP_S,
    ) -> None:
        self.session = session
        self.epoch = epoch
        self.mark = start
        self.failure: SessionError | None = None
        self.failed = asyncio.Event()  # set with `failure`: the log has stopped for good
        self.give_up_s = give_up_s
        self._js = js
        self._still_owner = still_owner
        self._subject = subjects.session_events(session)
        self._pending: list[tuple[int, bytes]] = []
        self._pushed = start.seq
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventLog:
        self._task = asyncio.create_task(self._run(), name=f"log:{self.session}")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def push(self, seq: int, data: bytes) -> None:
        self._pending.append((seq, data))
        self._pushed = seq
        self._wake.set()

    def kick(self) -> None:
        """Publish what is pending without lingering (a new owner's first events: once
        they are in, a fenced-out owner's appends fail their CAS)."""
        self._urgent.set()
        self._wake.set()

    async def flush(self) -> Mark:
        """Wait until everything pushed so far is in the stream; the durable mark."""
        target = self._pushed
        self._urgent.set()
        while self.mark.seq < target:
            if self.failure is not None:
                raise self.failure
            progress = self._progress
            await progress.wait()
        return self.mark

    async def aclose(self) -> None:
        """Drain (when still healthy, for at most DRAIN_S), then stop. Safe twice."""
        if self._task is None:
            return
        with contextlib.suppress(SessionError, TimeoutError):
            if not self._task.done():
                async with timeout(DRAIN_S):
                    await self.flush()
        await self.abort()

    async def abort(self) -> None:
        """Stop now, dropping what is not appended yet (a crash, or a fenced owner)."""
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                if not self._urgent.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._urgent.wait(), LINGER_S)
                self._wake.clear()
                self._urgent.clear()
                if self._pending:
                    await self._append(self._take())
                if self._pending:  # more came while we published: linger, then go on
                    self._wake.set()
        except SessionError as exc:
            self.failure = exc
            self.failed.set()
            self._advance(self.mark)
            log.warning("event log of %s stopped: %s", self.session, exc)

    def _take(self) -> list[tuple[int, bytes]]:
        size, count = 0, 0
        for _, data in self._pending:
            if count and size + len(data) > LOG_FRAME_BYTES:
                break
            size += len(data)
            count += 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    async def _append(self, batch: list[tuple[int, bytes]]) -> None:
        payload = pack([data for _, data in batch])
        msg_id = f"{self.session}:{self.epoch}:{batch[0][0]}"
        expected = self.mark.log_pos
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        tries = 0
        cas_losses = 0
        while cas_losses <= len(RETRY_S):
            # Before every try, not just the first: a zombie stops here, before its CAS
            # might still win (a retry can come a whole outage after the first try).
            if not self._still_owner():
                raise LeaseLost(self.session, "the lease ran out before these events were logged")
            headers = {
                Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(expected),
                Header.MSG_ID.value: msg_id,
            }
            try:
                ack = await self._js.publish(self._subject, payload, headers=headers)
            except APIError as exc:
                if exc.err_code in WRONG_LAST:
                    cas_losses += 1
                    expected = await self._foreign_append(exc)
                    continue
                error: Exception = exc
            except nats.errors.Error as exc:  # timeouts: the retry's Msg-Id dedupes
                error = exc
            else:
                if tries:
                    log.info("append to %s went through after %d failed tries", self._subject,
                             tries)  # fmt: skip
                self._advance(Mark(ack.seq, batch[-1][0]))
                return
            now = loop.time()
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= self.give_up_s:
                raise SessionError(f"event log of {self.session}: {error!r}") from error
            if tries == 0:  # once per outage, not once per try
                log.info("append to %s failed (%r), retrying", self._subject, error)
            await asyncio.sleep(RETRY_S[min(tries, len(RETRY_S) - 1)])
            tries += 1
        raise SessionError(f"event log of {self.session}: appends keep losing their CAS")

    async def _foreign_append(self, exc: APIError) -> int:
        """Someone else appended. A fenced-out owner stops here; the lease holder reads
        the new end (a zombie's last frames, or an engine's own audit publish) and goes on."""
        if not self._still_owner():
            raise LeaseLost(self.session, "a newer owner appended to the log") from exc
        tail = await log_tail(self._js, self.session)
        log.warning(
            "log of %s moved under us to %d; appending after it", self.session, tail.log_pos
        )
        return tail.log_pos

    def _advance(self, mark: Mark) -> None:
        self.mark = mark
        self._progress.set()
        self._progress = asyncio.Event()


async def log_tail(js: JetStreamContext, session: str) -> Mark:
    """Where the log ends: its last frame's stream sequence and last event seq."""
    try:
        msg = await js.get_msg(subjects.SESSIONS_STREAM, subject=subjects.session_events(session))
    except NotFoundError:
        return Mark()
    except nats.errors.Error as exc:
        raise TransportError(f"reading the log of {session}: {exc!r}") from exc
    try:
        events = unpack(msg.data or b"").events
    except DecodeError:
        log.warning("unreadable frame %s at the end of the log of %s", msg.seq, session)
        events = []
    return Mark(msg.seq or 0, events[-1].seq if events else 0)


async def read_log(
    js: JetStreamContext, session: str, *, after: int, start: int = 0
) -> list[AgentEventBase]:
    """Events with seq > `after`, reading frames from stream sequence `start` on
    (0: the first frame of the session) to the log's current end."""
    tail = await log_tail(js, session)
    if tail.log_pos == 0 or tail.log_pos < start:
        return []
    events: list[AgentEventBase] = []
    try:
        async for data in _frames(js, subjects.session_events(session), start, tail.log_pos):
            events.extend(event for event in _decode(data, session) if event.seq > after)
    except nats.errors.Error as exc:
        raise TransportError(f"reading the log of {session}: {exc!r}") from exc
    return events


def _decode(data: bytes, session: str) -> list[AgentEventBase]:
    try:
        return unpack(data).events
    except DecodeError as exc:  # someone else's bytes on our subject: skip, say so
        log.warning("skipping a bad frame in the log of %s: %s", session, exc)
        return []


async def _frames(js: JetStreamContext, subject: str, start: int, end: int) -> AsyncIterator[bytes]:
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start else DeliverPolicy.ALL,
        opt_start_seq=start or None,
        inactive_threshold=_CONSUMER_IDLE_S,
    )
    sub = await js.pull_subscribe(subject, stream=subjects.SESSIONS_STREAM, config=config)
    try:
        position = 0
        while position < end:
            for msg in await sub.fetch(_READ_BATCH, timeout=_READ_TIMEOUT_S):
                position = msg.metadata.sequence.stream
                yield msg.data
    finally:
        await sub.unsubscribe()
