"""Taking a session back when its owner is gone, and recovering it from the hub.

`Reclaimer` watches the lease board for leases this process may take: the ones whose
`prev` is us (we handed the session over, and the new owner stopped renewing), the ones
a host-specific rule allows (any cloud replica for a cloud-owned session), and the ones
that name us but that we are not running (this process restarted). A lease is taken
once it is expired by the board's clock-free rule, by CAS on the revision we saw: if its
holder renewed in between, the CAS fails and nothing happens.

`recover` rebuilds the session from what is durable: the latest snapshot (a turn's
checkpoint or the handoff's) brought up to the log's end (`catch_up`). The log is the
truth: a turn's checkpoint is written when it starts, with its question pending, so a
question whose `agent_complete` is in the log after it is done, and its answer is put
into the conversation from the log instead of being given a second time. A question
cut mid-answer (no `agent_complete` durable) is answered again by the engine's
`resume()`, unless the cut turn had already run a tool: that action is not repeated
(the device would refuse a stale epoch, but the conversation would show it twice), and
the new owner ends the turn with an `error` ("interrupted") the user can ask again
after. The new owner numbers on from the log's end; events the dead owner streamed but
never made durable are superseded (a follower's `SeqGate` rebases on the higher epoch).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from shared.errors import TransportError
from shared.messages import (
    AgentComplete,
    AgentError,
    AgentEventBase,
    AgentStart,
    AgentSwitch,
    ChatMessage,
    ContentChunk,
    HandoffAbort,
    SessionSnapshot,
    ToolExecution,
    ToolResult,
)
from shared.session.agent import AgentLoader
from shared.session.board import LeaseBoard, Seen
from shared.session.errors import NotOwner, SessionError
from shared.session.gate import SeqGate
from shared.session.lease import Lease, LeaseValue
from shared.session.log import log_tail, read_log
from shared.session.runner import HostContext, SessionRunner
from shared.session.snapshot import decode_snapshot

log = logging.getLogger(__name__)

MayReclaim = Callable[[Lease], bool]
Adopt = Callable[[SessionRunner], Awaitable[None]]
Start = Callable[[SessionRunner], None]


@dataclass(frozen=True, slots=True)
class Recovered:
    """A snapshot brought up to the log's end."""

    snapshot: SessionSnapshot
    interrupted: tuple[str, ...] = ()  # tools a cut turn ran: it is not answered again


async def recover(
    ctx: HostContext, loader: AgentLoader, lease: Lease, *, sent_at: float, reason: str
) -> tuple[SessionRunner, Recovered]:
    """A runner for `lease` (just acquired by us) from the hub's durable state; the
    caller adopts it, then announces it (`handoff_abort`), then lets it answer."""
    tail = await log_tail(ctx.js, lease.session)
    ref = await ctx.snapshots.latest(lease.session)
    if ref is not None:
        snapshot = decode_snapshot(await ctx.snapshots.read(lease.session, ref))
    else:  # never checkpointed: nothing was said in it yet
        snapshot = SessionSnapshot(
            session=lease.session, gw=lease.value.gw, epoch=lease.epoch, owner=ctx.owner.side
        )
    # Only a reclaim reads the log (a handoff's snapshot is taken after the turn):
    # from the snapshot's log position on, the frames written after it.
    after = await read_log(
        ctx.js, lease.session, after=snapshot.last_seq, start=ref.log_pos if ref else 0
    )
    recovered = catch_up(snapshot, after)
    last_seq = max(tail.seq, snapshot.last_seq)
    update = {"last_seq": last_seq, "epoch": lease.epoch, "owner": ctx.owner.side}
    agent = await loader(recovered.snapshot.model_copy(update=update))
    runner = SessionRunner(ctx, agent, lease, start=tail, snap=ref, sent_at=sent_at)
    await runner.__aenter__()
    return runner, recovered


def catch_up(snapshot: SessionSnapshot, events: Sequence[AgentEventBase]) -> Recovered:
    """`snapshot` with what the log says happened to its pending question after it.

    Only the turn in progress at the snapshot can be rebuilt: a later turn's question
    is not in the log (`agent_start` does not carry it), so the rebuild stops at the
    next `agent_start`. The rebuilt reply is what the log shows (text chunks, a tool
    exchange as the call's text and its result as JSON), not the engine's own message
    list word for word; the next turn's checkpoint carries it on from there.
    """
    events = SeqGate(last=snapshot.last_seq, epoch=snapshot.epoch).offer(events)
    if not snapshot.pending:
        return Recovered(snapshot)
    replies: list[ChatMessage] = []
    said: list[str] = []
    tools: list[str] = []
    memory = dict(snapshot.memory)
    for event in events:
        if isinstance(event, AgentStart):
            break  # a turn the snapshot does not know the question of
        if isinstance(event, AgentSwitch):
            memory["agent"] = event.to_agent
        elif isinstance(event, ContentChunk):
            said.append(event.text)
        elif isinstance(event, ToolExecution):
            call = json.dumps({"tool": event.tool, "args": event.args})
            replies.append(ChatMessage(role="assistant", content="".join(said) + call))
            said = []
            tools.append(event.tool)
        elif isinstance(event, ToolResult):
            content = json.dumps(event.result)
            replies.append(ChatMessage(role="tool", name=event.tool, content=content))
        elif isinstance(event, AgentComplete):
            replies.append(ChatMessage(role="assistant", content="".join(said)))
            return Recovered(_answered(snapshot, replies, memory, len(tools)))
        elif isinstance(event, AgentError) and not event.retryable:
            return Recovered(_answered(snapshot, replies, memory, len(tools)))
        elif isinstance(event, AgentError):
            break  # still pending (the engine keeps a retryable failure's question)
    if not tools:
        return Recovered(snapshot)  # cut before acting: answer it again
    if said:
        replies.append(ChatMessage(role="assistant", content="".join(said)))
    return Recovered(_answered(snapshot, replies, memory, len(tools)), tuple(tools))


def _answered(
    snapshot: SessionSnapshot, replies: list[ChatMessage], memory: dict[str, JsonValue], calls: int
) -> SessionSnapshot:
    """The pending question done: its reply replaces whatever half turn followed it."""
    task = snapshot.pending[0]
    index = task.get("index")
    keep = index + 1 if isinstance(index, int) and not isinstance(index, bool) else None
    before = snapshot.messages[:keep] if keep is not None else snapshot.messages
    tool_state = dict(snapshot.tool_state)
    counted = tool_state.get("calls", 0)
    if calls and isinstance(counted, int):
        tool_state["calls"] = counted + calls  # call ids stay unique
    return snapshot.model_copy(
        update={
            "messages": [*before, *replies], "pending": snapshot.pending[1:],
            "memory": memory, "tool_state": tool_state,
        }
    )  # fmt: skip


class Reclaimer:
    """One task: sleep until the next lease we may take is due, take it, recover it."""

    def __init__(
        self,
        ctx: HostContext,
        board: LeaseBoard,
        loader: AgentLoader,
        adopt: Adopt,
        start: Start,
        *,
        busy: Callable[[str], bool],
        may_reclaim: MayReclaim | None = None,
    ) -> None:
        self._ctx = ctx
        self._board = board
        self._loader = loader
        self._adopt = adopt
        self._start = start
        self._busy = busy
        self._rule = may_reclaim
        self._poked = asyncio.Event()
        self.reclaimed = 0

    def poke(self) -> None:
        """Look at the board again: a session stopped being busy here (a runner that
        stopped acting without its lease changing, e.g. its log failed). Without this,
        the board would not change and this host would never take its own lease back."""
        self._poked.set()

    def eligible(self, lease: Lease) -> bool:
        me = self._ctx.owner.id
        if self._busy(lease.session):
            return False  # we run it, or are taking it over right now
        if self._ctx.gw and lease.value.gw != self._ctx.gw:
            return False
        if lease.value.owner == me or lease.value.prev == me:
            return True
        return self._rule is not None and self._rule(lease)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            changed = self._board.changed()
            self._poked.clear()
            due, next_at = self._due(loop.time())
            for seen in due:
                await self._take(seen)
            if due:
                continue
            wait_s = None if next_at is None else max(0.0, next_at - loop.time())
            await _either(changed, self._poked, wait_s)

    def _due(self, now: float) -> tuple[list[Seen], float | None]:
        due: list[Seen] = []
        next_at: float | None = None
        for lease in self._board.leases():
            seen = self._board.get(lease.session)
            if seen is None or not self.eligible(lease):
                continue
            at = self._board.deadline(seen)
            if at <= now:
                due.append(seen)
            else:
                next_at = at if next_at is None else min(next_at, at)
        return due, next_at

    async def _take(self, seen: Seen) -> None:
        old = seen.lease
        me = self._ctx.owner
        value = LeaseValue(
            owner=me.id, side=me.side, gw=old.value.gw, ttl_ms=round(self._ctx.settings.ttl_s * 1000),
            prev=old.value.owner, reason=f"reclaimed: {old.value.owner} expired",
        )  # fmt: skip
        sent = asyncio.get_running_loop().time()
        try:
            lease = await self._ctx.leases.acquire(old.session, value, last=old)
        except NotOwner:
            return  # renewed, or taken by someone else first
        except TransportError as exc:
            log.warning("reclaiming %s failed: %s", old.session, exc)
            await asyncio.sleep(self._ctx.settings.ttl_s / 3)  # the hub is away: not a hot loop
            return
        reason = f"reclaimed from {old.value.owner} at epoch {lease.epoch}: its lease expired"
        log.warning(reason, extra={"session": old.session})
        try:
            runner, recovered = await recover(
                self._ctx, self._loader, lease, sent_at=sent, reason=reason
            )
        except (SessionError, TransportError) as exc:
            log.error("recovering %s failed: %s", old.session, exc)
            return
        try:
            await self._adopt(runner)
            await runner.emit(HandoffAbort, reason=reason[:500])
            if recovered.interrupted:  # ends the cut turn for whoever waits on it
                tools = ", ".join(recovered.interrupted)
                message = f"the previous owner stopped after running {tools}; not run again"
                await runner.emit(AgentError, code="interrupted", message=message[:500])
            runner.log.kick()
        except SessionError as exc:
            log.error("reclaimed %s but could not go on: %s", old.session, exc)
            await runner.abort()
            return
        self.reclaimed += 1
        self._start(runner)


async def _either(first: asyncio.Event, second: asyncio.Event, wait_s: float | None) -> None:
    """Until either event is set, or `wait_s` passes."""
    waits = [
        asyncio.create_task(first.wait(), name="reclaim-wait-board"),
        asyncio.create_task(second.wait(), name="reclaim-wait-poke"),
    ]
    try:
        await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
