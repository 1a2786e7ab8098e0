"""`SessionHost`: one process's side of the handoff protocol (an edge daemon, a cloud replica).

    async with SessionHost(nc, Owner("cloud", "r1"), loader) as host:
        host.sessions()                          # every lease: owner, epoch
        await host.handoff("s1", "edge")         # move one (here, or ask its owner)
        async for event in host.ask("s1", "hi"): # talk to it, wherever it runs
            ...

What it runs: the sessions it owns (`SessionRunner`s), the handoffs it takes (`Intake`,
on `<inbox>.prepare` / `.commit`, and `cloud.session.prepare` in a queue group for cloud
replicas), the leases it may take back (`Reclaimer`), and followers of sessions owned
elsewhere (`EventFeed`). Its inbox also answers `.request` (a handoff order from the CLI
or the API) and `.ask` (user input for a session it owns).

A *client* (`serve=False`, e.g. `baton chat` beside the gateway's daemon) runs none of
that: it watches the leases, and `ask`s, `handoff`s (an order to the owner) and `follow`s
sessions that run elsewhere; it never owns one, so two processes never answer for one
owner's inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any, Final

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared import subjects
from shared.errors import DecodeError, TransportError
from shared.messages import AgentComplete, AgentError, AgentEventBase, HandoffRequest
from shared.session.agent import AgentLoader, SessionAgent
from shared.session.board import LeaseBoard, Seen
from shared.session.control import (
    Ask,
    AskReply,
    Commit,
    CommitReply,
    Control,
    HandoffOrder,
    HandoffReport,
    Prepare,
    PrepareReply,
)
from shared.session.errors import HandoffAborted, NotOwner, SessionError
from shared.session.feed import EventFeed
from shared.session.frames import Mark
from shared.session.gate import SeqGate
from shared.session.handoff import hand_out
from shared.session.intake import Intake
from shared.session.lease import Lease, LeaseStore, LeaseValue
from shared.session.log import log_tail, read_log
from shared.session.owner import CLOUD_PREPARE, CLOUD_QUEUE, Owner, Side
from shared.session.reclaim import MayReclaim, Reclaimer
from shared.session.runner import HostContext, SessionRunner, SessionSettings, hub_js
from shared.session.snapshot import SnapshotStore
from shared.session.tasks import stop_tasks

log = logging.getLogger(__name__)

ASK_TIMEOUT_S: Final = 10.0
# A handoff ordered through the inbox may wait for a turn, then cut it; the CLI waits
# this much longer than the order itself can take.
ORDER_SLACK_S: Final = 5.0
AgentRequestHook = Callable[[SessionRunner, HandoffRequest], bool]
Handler = Callable[[Msg], Coroutine[Any, Any, None]]


class SessionHost:
    """An async context manager; `aclose()` drains every runner (leases kept: they run out,
    and a handoff partner or this process after a restart takes them back)."""

    def __init__(
        self,
        nc: Client,
        owner: Owner,
        loader: AgentLoader,
        *,
        gw: str = "",
        settings: SessionSettings | None = None,
        may_reclaim: MayReclaim | None = None,
        follow_after_handoff: bool = False,
        serve: bool = True,
    ) -> None:
        self.nc = nc
        self.serve = serve
        self.owner = owner
        self.settings = settings or SessionSettings()
        self.runners: dict[str, SessionRunner] = {}
        # Every runner adopted and not yet fully stopped (a retired one may still be).
        self._every: set[SessionRunner] = set()
        self.feeds: dict[str, EventFeed] = {}
        self.on_agent_request: AgentRequestHook | None = None
        self._loader = loader
        self._gw = gw
        self._may_reclaim = may_reclaim
        self._follow = follow_after_handoff
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner_hooks: list[Callable[[SessionRunner], None]] = []
        self._watchers: dict[str, list[Callable[[AgentEventBase], None]]] = {}
        self._ctx: HostContext | None = None
        self._closing = False
        self._board: LeaseBoard | None = None
        self._intake: Intake | None = None
        self._reclaimer: Reclaimer | None = None

    # -- life cycle ---------------------------------------------------------------------

    async def __aenter__(self) -> SessionHost:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _start(self) -> None:
        js = hub_js(self.nc)
        try:
            kv = await js.key_value(subjects.LEASES_BUCKET)
            bucket_ttl = (await kv.status()).ttl
        except nats.errors.Error as exc:
            raise TransportError(f"the hub's leases bucket: {exc!r} (is ensure_hub run?)") from exc
        self._check_ttl(bucket_ttl)
        leases = LeaseStore(js, kv, bucket_ttl_s=bucket_ttl)
        ctx = HostContext(
            self.nc, js, leases, SnapshotStore(js), self.owner, self._gw, self.settings
        )
        self._ctx = ctx
        self._board = await LeaseBoard(leases).__aenter__()
        if not self.serve:
            return  # a client: no inbox, no intake, no reclaimer
        self._board.listen(self._on_lease)
        self._intake = Intake(ctx, self._loader, self._adopt, self._resume)
        self._reclaimer = Reclaimer(
            ctx, self._board, self._loader, self._adopt, self._resume, busy=self._busy,
            may_reclaim=self._may_reclaim,
        )  # fmt: skip
        self.spawn(self._reclaimer.run(), f"reclaim:{self.owner.id}")
        await self._subscribe()

    def _check_ttl(self, bucket_ttl: float | None) -> None:
        # The bucket's max_age deletes a lease not renewed for that long; a longer lease
        # TTL would vanish before it expired by our own rule.
        if bucket_ttl and self.settings.ttl_s > bucket_ttl:
            raise SessionError(
                f"lease TTL {self.settings.ttl_s}s is over the leases bucket's max_age {bucket_ttl}s"
            )

    async def _subscribe(self) -> None:
        handlers: dict[str, Handler] = {
            self.owner.inbox("request"): self._on_order,
            self.owner.inbox("prepare"): self._on_prepare,
            self.owner.inbox("commit"): self._on_commit,
            self.owner.inbox("ask"): self._on_ask,
        }
        if self.owner.side == "cloud":
            handlers[CLOUD_PREPARE] = self._on_prepare
        for subject, handler in handlers.items():
            queue = CLOUD_QUEUE if subject == CLOUD_PREPARE else ""
            await self.subscribe(subject, handler, queue=queue)

    async def subscribe(self, subject: str, handler: Handler, *, queue: str = "") -> None:
        """Answer `subject` with `handler`, each message in a task this host owns; the
        subscription ends when the host closes (how `EdgeHandoff` adds the `open` op)."""
        cb = functools.partial(self._dispatch_msg, handler)
        self._subs.append(await self.nc.subscribe(subject, queue=queue, cb=cb))

    async def _dispatch_msg(self, handler: Handler, msg: Msg) -> None:
        """Run an inbox message's handler in a task this host owns: a handoff or a
        snapshot load outlives nats-py's callback, and closing the host must stop it."""
        if self._closing:
            return  # the asker times out, or gets no-responders from its next try
        self.spawn(handler(msg), f"inbox:{msg.subject}")

    async def aclose(self) -> None:
        """Stop taking work, drain every runner, stop following. Safe twice."""
        self._closing = True
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):  # the connection may be closing
                await sub.unsubscribe()
        if self._intake is not None:
            self._intake.close()
        await self._cancel_tasks()
        for runner in list(self._every):
            await runner.aclose()  # finishes a stop a cancelled handoff cut short
        self.runners.clear()
        self._every.clear()
        for feed in list(self.feeds.values()):
            await feed.aclose()
        self.feeds.clear()
        if self._board is not None:
            await self._board.aclose()

    async def abort(self) -> None:
        """A crash (tests): stop everything without draining or releasing anything."""
        self._closing = True
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs = []
        await self._cancel_tasks()
        for runner in list(self._every):
            await runner.abort()
        self.runners.clear()
        await self.aclose()

    async def _cancel_tasks(self) -> None:
        await stop_tasks(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # -- what the API and the CLI read ------------------------------------------------

    @property
    def ctx(self) -> HostContext:
        if self._ctx is None:
            raise SessionError("the session host is not started")
        return self._ctx

    @property
    def board(self) -> LeaseBoard:
        if self._board is None:
            raise SessionError("the session host is not started")
        return self._board

    def lease(self, session: str) -> Lease | None:
        seen = self.board.get(session)
        return seen.lease if seen else None

    def sessions(self) -> list[Lease]:
        """Every session lease on the hub, as this process last saw it."""
        return sorted(self.board.leases(), key=lambda lease: lease.session)

    def on_runner(self, hook: Callable[[SessionRunner], None]) -> Callable[[], None]:
        """Call `hook` for every session this host starts owning (e.g. to tell a fence).
        Returns its undo."""
        self._runner_hooks.append(hook)
        return lambda: self._runner_hooks.remove(hook)

    # -- owning -------------------------------------------------------------------------

    async def open(self, agent: SessionAgent, session: str, *, gw: str) -> SessionRunner:
        """Start owning a new session (creates its lease; `NotOwner` if it exists)."""
        if not self.serve:
            raise SessionError("a client host owns no session: ask its daemon to open it")
        value = LeaseValue(
            owner=self.owner.id, side=self.owner.side, gw=gw,
            ttl_ms=round(self.settings.ttl_s * 1000), reason="opened",
        )  # fmt: skip
        sent = asyncio.get_running_loop().time()
        lease = await self.ctx.leases.acquire(session, value, last=None)
        tail = await log_tail(self.ctx.js, session)
        if tail.seq > agent.seq:  # an id reused: its history is on the hub, recover it
            await self.ctx.leases.release(lease)
            raise SessionError(f"session {session} already has {tail.seq} events on the hub")
        ref = await self.ctx.snapshots.latest(session)
        runner = SessionRunner(self.ctx, agent, lease, start=tail, snap=ref, sent_at=sent)
        await runner.__aenter__()
        await self._adopt(runner)
        await runner.checkpoint()  # a reclaimer always finds a snapshot
        return runner

    async def _adopt(self, runner: SessionRunner) -> None:
        old = self.runners.get(runner.session)
        if old is not None and old is not runner:
            await old.abort()
        self.runners[runner.session] = runner
        self._every = {r for r in self._every if not r.stopped.is_set()} | {runner}
        feed = self.feeds.pop(runner.session, None)
        if feed is not None:
            await feed.aclose()
            await self._catch_up(feed, runner)
        runner.on_agent_request = self._agent_request
        runner.stream.listen(functools.partial(self._dispatch, runner.session))
        runner.on_end.append(self._forget)
        for hook in self._runner_hooks:
            hook(runner)

    async def _catch_up(self, feed: EventFeed, runner: SessionRunner) -> None:
        """Hand our watchers what the closed feed had not delivered yet: every event up
        to where the new runner starts is in the log (it starts at the log's end)."""
        if runner.session not in self._watchers:
            return
        start = feed.log_pos + 1 if feed.log_pos else 0
        try:
            events = await read_log(self.ctx.js, runner.session, after=feed.gate.last, start=start)
        except TransportError as exc:
            log.warning("catching up %s from the log failed: %s", runner.session, exc)
            return
        for event in events:
            if event.seq <= runner.stream.last_seq:
                self._dispatch(runner.session, event)

    def _resume(self, runner: SessionRunner) -> None:
        """After a handoff or a reclaim: answer what the previous owner left pending."""
        if runner.agent.pending and runner.acting():
            self.spawn(runner.submit(None), f"resume:{runner.session}")

    def _forget(self, runner: SessionRunner) -> None:
        if self.runners.get(runner.session) is runner:
            del self.runners[runner.session]
        if self._reclaimer is not None:
            self._reclaimer.poke()  # its lease may come due here now

    def _busy(self, session: str) -> bool:
        intake = self._intake
        return session in self.runners or (intake is not None and intake.is_prepared(session))

    def _agent_request(self, runner: SessionRunner, event: HandoffRequest) -> None:
        """The agent asked for a handoff (its context is full, the question needs the
        fleet): the hook (a `HandoffPolicy`) decides; yes cuts the turn and moves it."""
        hook = self.on_agent_request
        if hook is None or event.to == self.owner.side or not hook(runner, event):
            return
        runner.cut_turn()
        self.spawn(self._agent_handoff(runner, event), f"agent-handoff:{runner.session}")

    async def _agent_handoff(self, runner: SessionRunner, event: HandoffRequest) -> None:
        with contextlib.suppress(HandoffAborted):
            await self._hand_out(runner, event.to, None, event.reason, announced=True)

    # -- handoff ------------------------------------------------------------------------

    async def handoff(
        self, session: str, to: Side, *, target: Owner | None = None, reason: str = "request"
    ) -> HandoffReport:
        """Move `session` to `to` (or to `target`); from here if we own it, else by
        asking its owner. The report says whether it moved; it never raises for that."""
        runner = self.runners.get(session)
        if runner is not None and runner.acting():
            if target is None and to == self.owner.side:
                return HandoffReport(
                    ok=True, session=session, owner=self.owner.id, epoch=runner.epoch
                )
            try:
                return await self._hand_out(runner, to, target, reason)
            except HandoffAborted as exc:
                return _failed(session, exc.step, exc.reason)
        return await self._order(session, to, target, reason)

    async def _hand_out(
        self,
        runner: SessionRunner,
        to: Side,
        target: Owner | None,
        reason: str,
        *,
        announced: bool = False,
    ) -> HandoffReport:
        if target is None and to == "edge":
            target = Owner("edge", runner.keeper.lease.value.gw)
        report = await hand_out(runner, to, target=target, reason=reason, announced=announced)
        if report.owner and (self._follow or runner.session in self._watchers):
            await self.follow(runner.session)
        return report

    async def _order(
        self, session: str, to: Side, target: Owner | None, reason: str
    ) -> HandoffReport:
        # The lease itself, not the board: the board may be behind the last flip (its
        # watch lags, or it stalled), and a stale "it is already there" would report a
        # handoff as done that never happened, or send the order to a past owner. One
        # KV get per order; the flip itself is a CAS, so this read need not be atomic.
        try:
            lease = await self.ctx.leases.get(session)
        except TransportError as exc:
            return _failed(session, "lookup", f"reading the lease of {session}: {exc}")
        if lease is None:
            return _failed(session, "lookup", f"session {session} has no lease")
        if lease.value.side == to and target is None:
            return HandoffReport(
                ok=True, session=session, owner=lease.value.owner, epoch=lease.epoch
            )
        order = HandoffOrder(
            session=session, to=to, target=target.id if target else None, reason=reason
        )
        wait_s = self.settings.turn_wait_s * 2 + self.settings.prepare_timeout_s + ORDER_SLACK_S
        try:
            msg = await self.nc.request(
                lease.owner.inbox("request"), order.encode(), timeout=wait_s
            )
            return HandoffReport.decode(msg.data)
        except (nats.errors.Error, DecodeError) as exc:
            return _failed(session, "request", f"owner {lease.value.owner} did not answer: {exc!r}")

    # -- talking to a session -----------------------------------------------------------

    async def ask(self, session: str, text: str) -> AsyncIterator[AgentEventBase]:
        """One turn of `session`, wherever it runs, until it completes: its events in
        order, once each, even when the session moves mid-turn (an agent-requested
        handoff, a reclaim after the owner died: the new owner answers it again)."""
        queue: asyncio.Queue[AgentEventBase] = asyncio.Queue()
        undo = self.watch(session, queue.put_nowait)
        try:
            after, epoch = await self._submit(session, text)
            gate = SeqGate(last=after, epoch=epoch)
            while True:
                for event in gate.offer([await queue.get()]):
                    yield event
                    if isinstance(event, AgentComplete | AgentError):
                        return
        finally:
            undo()

    def watch(self, session: str, listener: Callable[[AgentEventBase], None]) -> Callable[[], None]:
        """Call `listener` with every event of `session` this host sees (from its own
        runner or from its feed). Returns its undo."""
        self._watchers.setdefault(session, []).append(listener)

        def undo() -> None:
            listeners = self._watchers.get(session, [])
            listeners.remove(listener)
            if not listeners:
                self._watchers.pop(session, None)

        return undo

    def _dispatch(self, session: str, event: AgentEventBase) -> None:
        for listener in list(self._watchers.get(session, ())):
            listener(event)

    async def _submit(self, session: str, text: str) -> tuple[int, int]:
        """Start the turn where the session runs: the seq and epoch its events follow."""
        runner = self.runners.get(session)
        if runner is not None and runner.acting():
            return await runner.submit(text), runner.epoch
        lease = self.lease(session)
        if lease is None:
            raise NotOwner(session, None)
        await self.follow(session)
        ask = Ask(session=session, text=text)
        try:
            msg = await self.nc.request(
                lease.owner.inbox("ask"), ask.encode(), timeout=ASK_TIMEOUT_S
            )
            reply = AskReply.decode(msg.data)
        except (nats.errors.Error, DecodeError) as exc:
            raise TransportError(f"asking {lease.value.owner}: {exc!r}") from exc
        if not reply.ok:
            raise NotOwner(ask.session, reply.owner)
        return reply.after, reply.epoch

    async def follow(self, session: str, *, after: int | None = None) -> EventFeed:
        """Follow a session owned elsewhere (WebRTC to its owner, NATS as fallback)."""
        feed = self.feeds.get(session)
        if feed is not None:
            return feed
        lease = self.lease(session)
        if lease is None:
            raise NotOwner(session, None)
        value = lease.value
        start = value.last_seq if after is None else after
        # A lease without marks (opened, reclaimed) has the session's history before it,
        # at lower epochs: from 0 the gate learns the epoch from the events themselves.
        feed = EventFeed(
            self.nc, self.ctx.js, session, side=value.side, after=start,
            epoch=lease.epoch if start else 0,
            mark=Mark(value.log_pos, value.last_seq), use_rtc=self.settings.rtc,
            heartbeat_s=self.settings.heartbeat_s,
        )  # fmt: skip
        self.feeds[session] = await feed.__aenter__()
        feed.listen(functools.partial(self._dispatch, session))
        return feed

    async def unfollow(self, session: str) -> None:
        """Stop following `session` (a client follows its new owner after a move)."""
        feed = self.feeds.pop(session, None)
        if feed is not None:
            await feed.aclose()

    # -- inbox --------------------------------------------------------------------------

    async def _on_order(self, msg: Msg) -> None:
        try:
            order = HandoffOrder.decode(msg.data)
            target = Owner.parse(order.target) if order.target else None
        except (DecodeError, ValueError) as exc:
            await respond(msg, _failed("unknown", "request", f"bad order: {exc}"))
            return
        runner = self.runners.get(order.session)
        if runner is None or not runner.acting():
            await respond(
                msg, _failed(order.session, "request", f"{self.owner.id} does not own it")
            )
            return
        await respond(
            msg, await self.handoff(order.session, order.to, target=target, reason=order.reason)
        )

    async def _on_prepare(self, msg: Msg) -> None:
        try:
            prepare = Prepare.decode(msg.data)
        except DecodeError as exc:
            await respond(msg, PrepareReply(ok=False, reason=f"bad prepare: {exc}"))
            return
        if prepare.session in self.runners:
            await respond(msg, PrepareReply(ok=False, reason="already running it"))
            return
        await respond(msg, await self._intake_or_fail().prepare(prepare))

    async def _on_commit(self, msg: Msg) -> None:
        try:
            reply = await self._intake_or_fail().commit(Commit.decode(msg.data))
        except (DecodeError, SessionError, TransportError) as exc:
            reply = CommitReply(ok=False, reason=str(exc))
        await respond(msg, reply)

    async def _on_ask(self, msg: Msg) -> None:
        try:
            ask = Ask.decode(msg.data)
        except DecodeError as exc:
            await respond(msg, AskReply(ok=False, reason=f"bad ask: {exc}"))
            return
        runner = self.runners.get(ask.session)
        try:
            if runner is None:
                raise NotOwner(ask.session, None)
            after = await runner.submit(ask.text)
            reply = AskReply(ok=True, after=after, epoch=runner.epoch, owner=self.owner.id)
        except SessionError as exc:
            lease = self.lease(ask.session)
            reply = AskReply(ok=False, owner=lease.value.owner if lease else None, reason=str(exc))
        await respond(msg, reply)

    def _on_lease(self, session: str, seen: Seen | None) -> None:
        intake = self._intake
        if seen is None or intake is None or not intake.is_prepared(session):
            return
        if seen.lease.value.owner == self.owner.id:
            self.spawn(intake.on_lease(seen.lease), f"activate:{session}")

    def _intake_or_fail(self) -> Intake:
        if self._intake is None:
            raise SessionError("the session host is not started")
        return self._intake


def _failed(session: str, step: str, error: str) -> HandoffReport:
    return HandoffReport(ok=False, session=session, step=step, error=error)


async def respond(msg: Msg, reply: Control) -> None:
    if msg.reply:
        with contextlib.suppress(nats.errors.Error):  # the asker gave up: nothing to do
            await msg.respond(reply.encode())
