"""`hand_out`: the owner's half of a handoff. The new owner's half is `intake`.

    old owner O (epoch e)                                   new owner N
    1 quiesce      wait for (or cut) the running turn
    2 request      emit handoff_request
    3 snapshot     write it durably (SESSIONS inline, or Object Store), emit
                   handoff_snapshot, flush the log            ── Prepare ──▶  load it, reply
    4 prepare                                                 ◀── owner id ─  its owner id
    5 flip         CAS the lease to N (revision = epoch e')
                   O stops acting; its followers drop to NATS
    6 commit                                                  ── Commit ───▶  start acting:
                                                              ◀── ok ──────   handoff_accept,
                                                                              handoff_complete

Interrupted at each step, exactly one side owns the session, and the conversation is in
the last durable snapshot plus the log:

- before 5 (O dies, N refuses, N times out): the lease is still O's. O, if alive, emits
  handoff_abort and goes on; if dead, its lease runs out and `SessionHost` recovers the
  session from the snapshot of step 3. N drops what it prepared when no flip comes.
- after 5, before N acts (N dies, the commit is lost): N also activates when it sees
  the flip on its lease board, so a lost commit costs nothing; if N is dead it never
  renews, and O (the lease's `prev`) reclaims it by CAS once it expires.
- a flip whose answer is lost (timeout) is read back: the lease says who won.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import nats.errors

from shared.compat import timeout
from shared.errors import DecodeError, TransportError
from shared.messages import HandoffAbort, HandoffRequest, HandoffSnapshot
from shared.session.control import (
    Commit,
    CommitReply,
    HandoffReport,
    Prepare,
    PrepareReply,
    Step,
)
from shared.session.errors import HandoffAborted, LeaseLost, SessionError
from shared.session.frames import Mark
from shared.session.lease import Lease, LeaseValue
from shared.session.owner import Owner, Side, prepare_subject
from shared.session.runner import SessionRunner
from shared.session.snapshot import SnapRef, blob_subject, encode_snapshot

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StepClock:
    """Each step's duration, on this process's monotonic clock."""

    start: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    steps: list[Step] = field(default_factory=list)
    _last: float = 0.0

    def step(self, name: str) -> None:
        now = asyncio.get_running_loop().time()
        self.steps.append(Step(name=name, ms=(now - (self._last or self.start)) * 1000))
        self._last = now

    def elapsed_ms(self) -> float:
        return (asyncio.get_running_loop().time() - self.start) * 1000


async def hand_out(
    runner: SessionRunner,
    to: Side,
    *,
    target: Owner | None = None,
    reason: str = "request",
    announced: bool = False,
) -> HandoffReport:
    """Move `runner`'s session to `target` (or any owner on side `to`). Raises
    `HandoffAborted` when it did not move; the report says how long each step took."""
    clock = StepClock()
    async with _quiet(runner):
        clock.step("quiesce")
        runner.stream.resync(runner.agent.seq)  # turns run on the engine directly count too
        runner.state = "handing_off"
        try:
            new, ref, mark = await _offer(runner, to, target, reason, announced, clock)
        except (SessionError, TransportError, DecodeError) as exc:
            await _abort(runner, "prepare", exc)
            raise HandoffAborted(runner.session, "prepare", str(exc)) from exc
        lease = await _flip(runner, new, ref, mark, reason)
        clock.step("flip")
        runner.successor = new.id
        await runner.retire(f"handed over to {new.id}")
    reply = await _commit(runner, new, lease, clock)
    report = HandoffReport(
        ok=reply.ok, session=runner.session, owner=new.id, epoch=lease.epoch,
        steps=clock.steps, latency_ms=clock.elapsed_ms(), step="" if reply.ok else "commit",
        error=reply.reason,
    )  # fmt: skip
    log.info("session %s handed to %s at epoch %d in %.1f ms", runner.session, new.id,
             lease.epoch, report.latency_ms, extra={"session": runner.session})  # fmt: skip
    return report


@contextlib.asynccontextmanager
async def _quiet(runner: SessionRunner) -> AsyncIterator[None]:
    """Hold the turn lock: wait for a running turn, then cut it (its question stays
    pending in the snapshot, so the new owner answers it)."""
    wait_s = runner.ctx.settings.turn_wait_s
    try:
        async with timeout(wait_s):
            await runner.turn_lock.acquire()
    except TimeoutError:
        runner.cut_turn()
        try:
            async with timeout(wait_s):
                await runner.turn_lock.acquire()
        except TimeoutError:
            raise HandoffAborted(
                runner.session, "quiesce", "the running turn did not stop"
            ) from None
    try:
        yield
    finally:
        runner.turn_lock.release()


async def _offer(
    runner: SessionRunner,
    to: Side,
    target: Owner | None,
    reason: str,
    announced: bool,
    clock: StepClock,
) -> tuple[Owner, SnapRef, Mark]:
    if not announced:
        await runner.emit(HandoffRequest, to=to, reason=reason)
    clock.step("request")
    # The snapshot's last_seq is the handoff_snapshot event's: the new owner goes on after it.
    data = encode_snapshot(runner.snapshot(last_seq=runner.stream.last_seq + 1))
    ref = await runner.store_snapshot(data)
    blob = blob_subject(runner.session, ref.blob) if ref.blob else None
    await runner.emit(HandoffSnapshot, size=len(data), object_name=blob)
    mark = await runner.log.flush()
    clock.step("snapshot")
    prepare = Prepare(
        session=runner.session, from_owner=runner.ctx.owner.id, epoch=runner.epoch, snap=ref,
        log_pos=mark.log_pos, last_seq=mark.seq, reason=reason,
        snapshot=data if ref.blob is None else None,
    )  # fmt: skip
    new = await _prepare(runner, target or to, prepare)
    clock.step("prepare")
    return new, ref, mark


async def _prepare(runner: SessionRunner, where: Owner | Side, prepare: Prepare) -> Owner:
    wait_s = runner.ctx.settings.prepare_timeout_s
    try:
        msg = await runner.ctx.nc.request(prepare_subject(where), prepare.encode(), timeout=wait_s)
    except nats.errors.NoRespondersError as exc:
        raise TransportError(f"no {where} is listening for handoffs") from exc
    except nats.errors.Error as exc:
        raise TransportError(f"prepare on {where}: {exc!r}") from exc
    reply = PrepareReply.decode(msg.data)
    if not reply.ok:
        raise SessionError(f"{where} refused: {reply.reason}")
    try:
        new = Owner.parse(reply.owner)
    except ValueError as exc:
        raise SessionError(f"{where} answered as {reply.owner!r}") from exc
    if new == runner.ctx.owner:
        raise SessionError("a handoff to ourselves")
    return new


async def _flip(runner: SessionRunner, new: Owner, ref: SnapRef, mark: Mark, reason: str) -> Lease:
    value = LeaseValue(
        owner=new.id, side=new.side, gw=runner.keeper.lease.value.gw,
        ttl_ms=runner.keeper.lease.value.ttl_ms, prev=runner.ctx.owner.id, snap=ref,
        log_pos=mark.log_pos, last_seq=mark.seq, reason=reason[:200],
    )  # fmt: skip
    try:
        return await runner.keeper.hand_over(value)
    except LeaseLost as exc:
        await runner.abort()  # not ours any more: nothing to announce, nothing to undo
        raise HandoffAborted(runner.session, "flip", str(exc)) from exc
    except TransportError as exc:
        return await _flip_outcome(runner, new, exc)


async def _flip_outcome(runner: SessionRunner, new: Owner, exc: TransportError) -> Lease:
    """The CAS may or may not have landed: the lease itself says."""
    try:
        current = await runner.ctx.leases.get(runner.session)
    except TransportError:
        current = None
    if current is not None and current.value.owner == new.id and current.epoch > runner.epoch:
        runner.keeper.forfeit(f"handed over to {new.id}")
        return current
    if current is not None and current.revision == runner.keeper.lease.revision:
        await _abort(runner, "flip", exc)
        raise HandoffAborted(runner.session, "flip", str(exc)) from exc
    await runner.abort()  # unknown or someone else's: stop acting, the fence does the rest
    raise HandoffAborted(runner.session, "flip", f"outcome unknown: {exc}") from exc


async def _abort(runner: SessionRunner, step: str, exc: BaseException) -> None:
    """The lease never moved: say so in the stream and go on owning the session."""
    runner.state = "active"
    log.warning("handoff of %s aborted at %s: %s", runner.session, step, exc)
    with contextlib.suppress(SessionError):
        await runner.emit(HandoffAbort, reason=f"{step}: {exc}"[:500])


async def _commit(runner: SessionRunner, new: Owner, lease: Lease, clock: StepClock) -> CommitReply:
    commit = Commit(
        session=runner.session, lease=lease.value.model_dump(mode="python"),
        revision=lease.revision, elapsed_ms=clock.elapsed_ms(),
    )  # fmt: skip
    wait_s = runner.ctx.settings.commit_timeout_s
    try:
        msg = await runner.ctx.nc.request(new.inbox("commit"), commit.encode(), timeout=wait_s)
        reply = CommitReply.decode(msg.data)
    except (nats.errors.Error, DecodeError) as exc:
        # It may still activate from its lease board; if it is dead, its lease runs out
        # and we (its `prev`) reclaim the session.
        reply = CommitReply(ok=False, reason=f"commit unconfirmed ({exc!r}); the lease "
                            f"returns to {runner.ctx.owner.id} after its TTL unless {new.id} "
                            "takes it")  # fmt: skip
    clock.step("commit")
    return reply
