"""`OpenServer`: the daemon's `handoff.<gw>.open`, where `baton chat` gets its session.

    await OpenServer(edge_handoff.host, new_agent, describe=about_the_agent).start()

One process per gateway owns its sessions (two on `handoff.<gw>.*` would both answer),
so when the daemon hosts sessions, `baton chat` is a client: it asks here, then talks
to the session through its own `SessionHost(serve=False)`.

- `Open()` starts a new session, owned by this daemon.
- `Open(session=ID)` answers with the session where it is: this daemon's runner, or the
  cloud replica that holds its lease. With no lease (nobody has run it since its lease ran
  out), the session as this gateway stored it is opened here again. A lease that names this
  daemon but that it does not run yet (it restarted) is taken back by the host's
  reclaimer when it expires; the answer waits for that, briefly.

Every answer names the gateway's model and its notice (`describe()`, asked after the
session was found or opened: the daemon loads its agent on the first open, not before).
The subscription belongs to the host (`SessionHost.subscribe`): it ends when the host closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from nats.aio.msg import Msg

from shared.compat import timeout
from shared.errors import DecodeError, TransportError
from shared.session import SessionAgent, SessionError, SessionHost
from shared.session.control import Open, OpenReply
from shared.session.host import respond

log = logging.getLogger(__name__)

NewAgent = Callable[[str], Awaitable[SessionAgent]]
"""The stored session with this id, or a new one: what the daemon's `LocalAgent` makes."""
Describe = Callable[[], Awaitable[tuple[str, str]]]
"""The gateway's model and what its agent says about itself, for the client's status line."""

# How long an `open` waits for the reclaimer to take back a session this daemon held
# before a restart; the client's own wait (`baton chat`) is a little longer.
RECLAIM_WAIT_S: Final = 4.0


class OpenServer:
    def __init__(
        self, host: SessionHost, new_agent: NewAgent, *, describe: Describe | None = None
    ) -> None:
        self._host = host
        self._new_agent = new_agent
        self._describe = describe
        self.opened = 0

    async def start(self) -> None:
        await self._host.subscribe(self._host.owner.inbox("open"), self._on_open)

    async def open(self, session: str | None) -> OpenReply:
        """Start `session` (None: a new one) here, or say where it runs."""
        sid = session or _new_session_id()
        try:
            owner, epoch = await self._where(sid)
            model, notice = await self._describe() if self._describe else ("", "")
        except (SessionError, TransportError) as exc:
            log.warning("opening session %s failed: %s", sid, exc, extra={"session": sid})
            return OpenReply(ok=False, session=sid, reason=str(exc))
        return OpenReply(ok=True, session=sid, owner=owner, epoch=epoch, model=model, notice=notice)

    async def _on_open(self, msg: Msg) -> None:
        try:
            request = Open.decode(msg.data)
        except DecodeError as exc:
            await respond(msg, OpenReply(ok=False, reason=f"bad open: {exc}"))
            return
        await respond(msg, await self.open(request.session))

    async def _where(self, sid: str) -> tuple[str, int]:
        host = self._host
        runner = host.runners.get(sid)
        if runner is not None and runner.acting():
            return host.owner.id, runner.epoch
        lease = host.lease(sid)
        if lease is None:
            runner = await host.open(await self._new_agent(sid), sid, gw=host.owner.name)
            self.opened += 1
            log.info("session %s opened for a client", sid, extra={"session": sid})
            return host.owner.id, runner.epoch
        if lease.value.gw != host.owner.name:
            raise SessionError(f"session {sid} belongs to gateway {lease.value.gw}")
        if lease.value.owner == host.owner.id:
            return host.owner.id, await self._reclaimed(sid)
        return lease.value.owner, lease.epoch

    async def _reclaimed(self, sid: str) -> int:
        """The epoch at which this host runs `sid` again, once its reclaimer took it."""
        host = self._host
        adopted = asyncio.Event()
        undo = host.on_runner(lambda runner: adopted.set() if runner.session == sid else None)
        try:
            if sid not in host.runners:
                async with timeout(RECLAIM_WAIT_S):
                    await adopted.wait()
        except asyncio.TimeoutError:
            raise SessionError(
                f"session {sid} is still held by this gateway's previous run; it is taken "
                "back when that lease runs out: try again in a few seconds"
            ) from None
        finally:
            undo()
        return host.runners[sid].epoch


def _new_session_id() -> str:
    # Imported here: the agent's modules load with the first session, not with the daemon.
    from edge.agent.local import new_session_id

    return new_session_id()
