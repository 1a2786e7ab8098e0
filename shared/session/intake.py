"""`Intake`: the new owner's half of a handoff (the old owner's is `handoff`).

    prepare(Prepare)  load the snapshot (inline, or from the hub), build the agent, keep
                      it ready; nothing acts yet: the lease is still the old owner's
    commit(Commit)    the lease flipped to us: start a `SessionRunner` at the new epoch,
    on_lease(lease)   emit handoff_accept and handoff_complete, accept input

The flip itself is the commit: `on_lease` (the lease board saw the CAS) activates as
well as a `Commit` message does, so an old owner that died right after flipping still
leaves an owner that acts. Whichever comes first activates; the other waits for it.
A prepared session nobody flips to within `PREPARE_TTL_TTLS` lease TTLs is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from shared.errors import TransportError
from shared.messages import HandoffAccept, HandoffComplete
from shared.session.agent import AgentLoader, SessionAgent
from shared.session.control import Commit, CommitReply, Prepare, PrepareReply
from shared.session.errors import SessionError
from shared.session.frames import Mark
from shared.session.lease import Lease, LeaseValue
from shared.session.runner import HostContext, SessionRunner
from shared.session.snapshot import decode_snapshot

log = logging.getLogger(__name__)

PREPARE_TTL_TTLS: Final = 2.0
Adopt = Callable[[SessionRunner], Awaitable[None]]
Start = Callable[[SessionRunner], None]


@dataclass(slots=True)
class _Prepared:
    agent: SessionAgent
    prepare: Prepare
    received: float
    expiry: asyncio.TimerHandle


class Intake:
    def __init__(self, ctx: HostContext, loader: AgentLoader, adopt: Adopt, start: Start) -> None:
        self._ctx = ctx
        self._loader = loader
        self._adopt = adopt
        self._start = start
        self._prepared: dict[str, _Prepared] = {}
        self._activating: dict[str, asyncio.Future[SessionRunner]] = {}
        # The last runner each session was activated as: a Commit that arrives after the
        # board's flip already activated it is answered from here.
        self._activated: dict[str, SessionRunner] = {}

    def is_prepared(self, session: str) -> bool:
        return session in self._prepared or session in self._activating

    async def prepare(self, msg: Prepare) -> PrepareReply:
        try:
            agent = await self._load(msg)
        except (SessionError, TransportError) as exc:
            log.warning("cannot take %s: %s", msg.session, exc)
            return PrepareReply(ok=False, reason=str(exc))
        loop = asyncio.get_running_loop()
        self._drop(msg.session)
        self._activated.pop(msg.session, None)
        ttl_s = self._ctx.settings.ttl_s * PREPARE_TTL_TTLS
        expiry = loop.call_later(ttl_s, self._drop, msg.session)
        self._prepared[msg.session] = _Prepared(agent, msg, loop.time(), expiry)
        return PrepareReply(ok=True, owner=self._ctx.owner.id)

    async def commit(self, msg: Commit) -> CommitReply:
        loop = asyncio.get_running_loop()
        received = loop.time()
        try:
            value = LeaseValue.model_validate(msg.lease)
        except ValueError as exc:
            return CommitReply(ok=False, reason=f"bad lease: {exc}")
        lease = Lease(msg.session, value, msg.revision)
        runner = await self.on_lease(lease, elapsed_ms=msg.elapsed_ms, since=received)
        if runner is None:
            return CommitReply(ok=False, reason="nothing prepared for this lease")
        return CommitReply(ok=True, accept_ms=(loop.time() - received) * 1000)

    async def on_lease(
        self, lease: Lease, *, elapsed_ms: float = 0.0, since: float | None = None
    ) -> SessionRunner | None:
        """Activate if `lease` is a flip to us of a session we prepared."""
        running = self._activating.get(lease.session)
        if running is not None:
            return await asyncio.shield(running)
        done = self._activated.get(lease.session)
        if done is not None and done.epoch == lease.epoch:
            return done
        prepared = self._prepared.get(lease.session)
        if prepared is None or not self._is_flip(lease, prepared):
            return None
        self._drop(lease.session)
        future: asyncio.Future[SessionRunner] = asyncio.get_running_loop().create_future()
        self._activating[lease.session] = future
        try:
            runner = await self._activate(prepared, lease, elapsed_ms, since or prepared.received)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the caller below gets it raised
            raise
        finally:
            del self._activating[lease.session]
        future.set_result(runner)
        self._activated[lease.session] = runner
        return runner

    def close(self) -> None:
        for session in list(self._prepared):
            self._drop(session)
        self._activated.clear()

    def _is_flip(self, lease: Lease, prepared: _Prepared) -> bool:
        value = lease.value
        return value.owner == self._ctx.owner.id and lease.epoch > prepared.prepare.epoch

    async def _load(self, msg: Prepare) -> SessionAgent:
        data = msg.snapshot
        if data is None:
            data = await self._ctx.snapshots.read(msg.session, msg.snap)
        snapshot = decode_snapshot(data)
        if snapshot.session != msg.session or snapshot.last_seq != msg.last_seq:
            raise SessionError(f"snapshot of {snapshot.session}@{snapshot.last_seq} does not match")
        side = self._ctx.owner.side
        return await self._loader(snapshot.model_copy(update={"owner": side}))

    async def _activate(
        self, prepared: _Prepared, lease: Lease, elapsed_ms: float, since: float
    ) -> SessionRunner:
        msg = prepared.prepare
        start = Mark(msg.log_pos, msg.last_seq)
        runner = SessionRunner(self._ctx, prepared.agent, lease, start=start, snap=msg.snap)
        await runner.__aenter__()
        try:
            side = self._ctx.owner.side
            await self._adopt(runner)
            await runner.emit(HandoffAccept, owner=side)
            latency = elapsed_ms + (asyncio.get_running_loop().time() - since) * 1000
            await runner.emit(HandoffComplete, owner=side, latency_ms=latency)
            runner.log.kick()
        except BaseException:
            await runner.abort()
            raise
        log.info("took session %s at epoch %d", lease.session, lease.epoch)
        self._start(runner)
        return runner

    def _drop(self, session: str) -> None:
        prepared = self._prepared.pop(session, None)
        if prepared is not None:
            prepared.expiry.cancel()
