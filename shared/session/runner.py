"""`SessionRunner`: one session this process owns — its agent, lease, log and live stream.

    runner = SessionRunner(ctx, agent, lease, start=log_mark)
    async with runner:                        # lease renewals, the event log, and the
        async for event in runner.ask("hi"):  # rtc.<session>.<side> signaling inbox
            ...

Acting needs the lease. Every event goes through `publish`, which first checks that the
keeper still holds it (the clock-free rule of `keeper`) and that the log has not been
fenced; a runner that fails the check stops its turn and ends (`ended`), and what it had
already sent carries its epoch, which receivers compare (DESIGN "Edge handoff").

When a turn starts, the runner writes a checkpoint (the snapshot with the question
pending) before the answer streams: if this owner dies mid-answer, whoever reclaims the
lease loads it and the engine's `resume()` answers the question again. There is no
second checkpoint when the turn completes (a snapshot write per turn, for nothing in the
common case): the reclaimer brings the snapshot up to the log's end (`reclaim.catch_up`),
so a question whose answer is in the log is not answered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from shared import subjects
from shared.compat import timeout
from shared.messages import AgentEventBase, HandoffRequest, SessionSnapshot
from shared.session import rtc
from shared.session.agent import E, SessionAgent
from shared.session.errors import LeaseLost, NotOwner, SessionError
from shared.session.frames import Mark
from shared.session.keeper import LeaseKeeper
from shared.session.lease import Lease, LeaseStore
from shared.session.log import EventLog
from shared.session.owner import Owner
from shared.session.snapshot import SnapRef, SnapshotStore, encode_snapshot
from shared.session.stream import HEARTBEAT_S, ChannelSink, EventStream
from shared.session.tasks import stop_tasks
from shared.streams import LEASE_TTL_S

log = logging.getLogger(__name__)

State = Literal["active", "handing_off", "ended"]
CHANNEL_WAIT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """Tunables of the handoff protocol (the cloud's and the edge's config fill them)."""

    ttl_s: float = LEASE_TTL_S  # lease TTL; at most the `leases` bucket's max_age
    heartbeat_s: float = HEARTBEAT_S  # live channel heartbeat; dead after 3 silent beats
    checkpoint_turns: bool = True  # write a snapshot when each turn starts
    turn_wait_s: float = 30.0  # a handoff waits this long for a running turn, then cuts it
    prepare_timeout_s: float = 5.0  # the new owner loads the snapshot within this
    commit_timeout_s: float = 2.0
    rtc: bool = True  # offer WebRTC to followers (else they read the NATS log)


@dataclass(frozen=True, slots=True)
class HostContext:
    """What every runner of one process shares."""

    nc: Client
    js: JetStreamContext  # the hub's JetStream (domain "hub")
    leases: LeaseStore
    snapshots: SnapshotStore
    owner: Owner
    gw: str  # the gateway whose sessions these are (for the edge; "" = any)
    settings: SessionSettings


class SessionRunner:
    """An async context manager; `aclose()` drains and stops acting (lease kept until it
    runs out), `abort()` is a crash, `end()` releases the lease."""

    def __init__(
        self,
        ctx: HostContext,
        agent: SessionAgent,
        lease: Lease,
        *,
        start: Mark,
        snap: SnapRef | None = None,
        sent_at: float | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.ctx = ctx
        self.agent = agent
        self.session = lease.session
        self.keeper = LeaseKeeper(ctx.leases, lease, sent_at=sent_at or loop.time())
        # Appends that fail are retried for up to a lease TTL: the runner goes on once the
        # hub takes them again (its lease is still its own), and gives up (`_watch_log`)
        # before a peer would have waited longer than a dead owner's lease for it.
        self.log = EventLog(
            ctx.js, self.session, epoch=lease.epoch, start=start,
            still_owner=self.keeper.valid, give_up_s=ctx.settings.ttl_s,
        )  # fmt: skip
        self.stream = EventStream(self.session, lease.epoch, self.log, last_seq=agent.seq)
        self.turn_lock = asyncio.Lock()
        self.state: State = "active"
        self.ended = asyncio.Event()
        self.stopped = asyncio.Event()  # every task and the log have stopped
        self.end_reason = ""
        self.successor: str | None = None  # the owner this runner handed the session to
        self.on_agent_request: Callable[[SessionRunner, HandoffRequest], None] | None = None
        self.on_end: list[Callable[[SessionRunner], None]] = []  # called once, when it stops
        # Our last `.snap` (CAS for the next one) and its blob (purged once superseded).
        self._snap_last = snap.seq if snap else 0
        self._last_blob = snap.blob if snap else None
        self._cut = False
        self._stopped = False
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def epoch(self) -> int:
        return self.keeper.epoch

    @property
    def side(self) -> str:
        return self.ctx.owner.side

    def acting(self) -> bool:
        return self.state != "ended" and self.keeper.valid() and self.log.failure is None

    async def __aenter__(self) -> SessionRunner:
        await self.keeper.__aenter__()
        await self.log.__aenter__()
        self.agent.fence(self.epoch, self.ctx.owner.side)
        if self.ctx.settings.rtc:
            subject = subjects.rtc_signal(self.session, self.side)
            self._sub = await self.ctx.nc.subscribe(subject, cb=self._on_offer)
        self.spawn(self._watch_lease(), f"runner-lease:{self.session}")
        self.spawn(self._watch_log(), f"runner-log:{self.session}")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- acting -------------------------------------------------------------------------

    async def ask(self, text: str) -> AsyncIterator[AgentEventBase]:
        """One turn; its events as they are sent. Raises `NotOwner` once this runner has
        handed the session on or lost it (the caller asks the new owner)."""
        async with self.turn_lock:
            self._check()
            async for event in self._turn(self.agent.ask(text)):
                yield event

    async def resume(self) -> AsyncIterator[AgentEventBase]:
        """Answer what a previous owner left pending."""
        async with self.turn_lock:
            self._check()
            async for event in self._turn(self.agent.resume()):
                yield event

    async def submit(self, text: str | None) -> int:
        """Start a turn for `text` (None: answer what is pending) in a task of this
        runner; returns, once the turn holds the session, the seq its events follow."""
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.spawn(self._submitted(text, started), f"turn:{self.session}")
        return await started

    async def _submitted(self, text: str | None, started: asyncio.Future[int]) -> None:
        try:
            async with self.turn_lock:
                self._check()
                started.set_result(self.stream.last_seq)
                events = self.agent.resume() if text is None else self.agent.ask(text)
                async for _ in self._turn(events):
                    pass
        except SessionError as exc:
            if not started.done():
                started.set_exception(exc)
            else:
                log.info("turn of %s stopped: %s", self.session, exc)
        finally:
            if not started.done():  # cancelled while waiting for the session
                started.set_exception(LeaseLost(self.session, self.end_reason or "stopped"))

    async def emit(self, cls: type[E], **fields: Any) -> AgentEventBase:
        """An event of the protocol itself (handoff_*), numbered by the agent."""
        self._check()
        return self.publish(await self.agent.emit(cls, **fields))

    def cut_turn(self) -> None:
        """Stop the running turn after its current event; its question stays pending."""
        self._cut = True

    async def _turn(self, events: AsyncIterator[AgentEventBase]) -> AsyncIterator[AgentEventBase]:
        self._cut = False
        first = True
        try:
            async for event in events:
                out = self.publish(event)
                if first and self.ctx.settings.checkpoint_turns:
                    await self.checkpoint()  # the question is pending in it now
                first = False
                if isinstance(out, HandoffRequest) and self.on_agent_request is not None:
                    self.on_agent_request(self, out)  # the agent's own limits (policy)
                yield out
                if self._cut:
                    break
        finally:
            await _aclose(events)

    def publish(self, event: AgentEventBase) -> AgentEventBase:
        """Send an event the agent made (numbered by it), if we still own the session."""
        self._check()
        return self.stream.emit(event)

    def _check(self) -> None:
        if self.acting():
            return
        if self.successor is not None:
            raise NotOwner(self.session, self.successor)
        raise LeaseLost(self.session, self.end_reason or self.keeper.reason or "not acting")

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self, *, last_seq: int | None = None) -> SessionSnapshot:
        snap = self.agent.to_snapshot(self.epoch, self.ctx.owner.side, None)
        seq = self.stream.last_seq if last_seq is None else last_seq
        return snap.model_copy(update={"last_seq": seq, "epoch": self.epoch})

    async def checkpoint(self) -> SnapRef:
        """Write the snapshot as it is now (durable before this returns). The log is
        flushed first, so a snapshot never claims a seq the log does not hold: whoever
        recovers from it numbers on without a hole."""
        await self.log.flush()
        return await self.store_snapshot(encode_snapshot(self.snapshot()))

    async def store_snapshot(self, data: bytes) -> SnapRef:
        ref = await self.ctx.snapshots.put(
            self.session,
            data,
            epoch=self.epoch,
            last=self._snap_last,
            log_pos=self.log.mark.log_pos,
        )
        self._snap_last = ref.seq
        previous, self._last_blob = self._last_blob, ref.blob
        if previous is not None:
            gc = self.ctx.snapshots.drop_blob(self.session, previous)
            self.spawn(gc, f"snap-gc:{self.session}")
        return ref

    # -- followers over WebRTC --------------------------------------------------------

    async def serve_offer(self, offer: rtc.Offer) -> str:
        """Answer a follower's (or, through the API, a browser's) offer: the answer SDP."""
        self._check()
        sdp, peer, arrived = await rtc.accept(offer)
        if self._stopped or not self.acting():  # it moved on while ICE was gathering
            await peer.aclose()
            self._check()
            raise LeaseLost(self.session, "stopped")
        self.spawn(self._serve_peer(peer, arrived, offer), f"rtc-peer:{self.session}")
        return sdp

    async def _on_offer(self, msg: Msg) -> None:
        # Answering takes ICE gathering (tens of ms): in a task of ours, so stopping the
        # runner stops it (and closes its peer connection), not in nats-py's callback.
        try:
            self.spawn(self._answer(msg), f"rtc-offer:{self.session}")
        except SessionError as exc:
            await msg.respond(rtc.refusal(str(exc)))

    async def _answer(self, msg: Msg) -> None:
        try:
            offer = rtc.Offer.decode(msg.data)
            reply = rtc.answer_reply(await self.serve_offer(offer))
        except (ValueError, KeyError) as exc:
            reply = rtc.refusal(f"bad offer: {exc}")
        except SessionError as exc:
            reply = rtc.refusal(str(exc))
        except Exception as exc:  # aiortc refused the SDP: tell the follower, keep serving
            log.warning("offer for %s failed: %r", self.session, exc)
            reply = rtc.refusal(f"offer failed: {exc!r}")
        await msg.respond(reply)

    async def _serve_peer(
        self, peer: rtc.RtcPeer, arrived: asyncio.Future[rtc.RtcPeer], offer: rtc.Offer
    ) -> None:
        try:
            async with timeout(CHANNEL_WAIT_S):
                await arrived
            sink = ChannelSink(
                peer, self.log, fmt=offer.fmt, heartbeat_s=self.ctx.settings.heartbeat_s
            )
            self.stream.attach(sink, offer.after)
            try:
                await sink.run()
            finally:
                self.stream.detach(sink)
        except TimeoutError:
            log.info("a follower of %s never opened its channel", self.session)
        finally:
            await peer.aclose()

    # -- life cycle ---------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A task this runner owns: cancelled and awaited when it stops."""
        if self._stopped:
            coro.close()
            raise LeaseLost(self.session, f"{name} after the runner stopped")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def _watch_lease(self) -> None:
        await self.keeper.lost.wait()
        if self.state == "active":  # not a handoff: lost, or released
            self._finish(f"lease lost: {self.keeper.reason}")
            self.cut_turn()

    async def _watch_log(self) -> None:
        """A log that failed for good makes this owner unable to act; if its keeper went
        on renewing, the lease would never run out and nobody could take the session
        back. Stop renewing instead: the lease runs out, and a peer (or this host, by
        its reclaimer) recovers the session from the hub."""
        await self.log.failed.wait()
        self.keeper.forfeit(f"its event log failed: {self.log.failure}")

    def _finish(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        self.end_reason = reason
        self.ended.set()
        log.info("session %s stops acting here: %s", self.session, reason)
        for hook in self.on_end:
            try:
                hook(self)
            except Exception:  # a hook's bug must not keep the runner acting
                log.exception("on_end hook of %s failed", self.session)

    async def retire(self, reason: str) -> None:
        """Stop acting after a handoff: the log is already flushed, the lease is the new
        owner's. Followers' channels close; they fall back to NATS and redial."""
        self._finish(reason)
        await self._stop(drain=True)

    async def aclose(self) -> None:
        """Drain (flush the log) and stop acting; the lease is not released."""
        self._finish("closed")
        await self._stop(drain=True)

    async def abort(self) -> None:
        """A crash: stop everything now, flush nothing, release nothing."""
        self._finish("aborted")
        await self._stop(drain=False)

    async def end(self) -> None:
        """The session is over: flush, then release the lease."""
        with contextlib.suppress(SessionError):
            await self.log.flush()
        await self.keeper.release()
        await self.aclose()

    async def _stop(self, *, drain: bool) -> None:
        """Every step is idempotent: a stop cut short (its caller cancelled) is finished
        by the next call (the host closes every runner it ever adopted)."""
        self._stopped = True
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):  # the connection may be closing too
                await sub.unsubscribe()
        await self.keeper.aclose()
        await (self.log.aclose() if drain else self.log.abort())
        await stop_tasks(self._tasks)
        self.stopped.set()


async def _aclose(events: AsyncIterator[AgentEventBase]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


def hub_js(nc: Client) -> JetStreamContext:
    """The hub's JetStream from any connection (the edge's goes through its leaf)."""
    return nc.jetstream(domain=subjects.HUB_DOMAIN)
