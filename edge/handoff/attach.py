"""`HandoffAttachment`: the edge daemon hosts agent sessions, as soon as the hub lets it.

    attachment = HandoffAttachment(daemon, nc=leaf, guard=guard, fence=writer.fence,
                                   uplink=lambda: uplink.stats().hub_connected,
                                   on_attached=release_free_heap)
    attachment.start()          # returns at once: a named task does the rest
    attachment.state            # "off" | "waiting for hub" | "attached"
    await attachment.aclose()   # the task, then the handoff, device state, agent

A gateway must work offline, so the daemon never waits for this. The task asks the hub's
`leases` bucket (through the leaf) whether it answers, retrying with backoff and logging
only when the state changes; once it does, it opens the device's state (sysfs, and
whether the uplink reaches the hub) and an `EdgeHandoff` whose every new lease epoch
raises the actuation guard's fence for that session and persists it (the `fencing`
table, as a command's epoch is), so a local command of a session the cloud now owns is
refused before the cloud has sent anything, also after a restart. It also answers
`handoff.<gw>.open`: `baton chat` opens its sessions here, and they stay here when the
chat exits.

Listening is all an attached daemon does until a session comes: the local agent (its
model or the rule backend, its tools, its session store and audit stream, on the
daemon's own store, leaf connection and guarded `execute`) is opened by the first
session that needs it (a client's open, a session handed or given back to the edge),
and so are its modules. Two things open it at attach instead: a configured GGUF model
(its load can take seconds, longer than a handoff's prepare may wait), and events an
earlier run left unpublished in the store (its audit stream sends them to the hub).

`on_attached()` runs once attached (the daemon gives back the heap that attaching
freed). `aclose()` closes what was opened in reverse order (the handoff, so its sessions
drain, then the device state, then the agent); the daemon calls it before it closes its
connection and store. The protocol modules are imported by the task, after ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

from nats.aio.client import Client
from nats.errors import Error as NatsError

from edge.actuate import ActuationGuard
from edge.uplink.backoff import Backoff
from shared import subjects
from shared.errors import BatonError, TransportError

if TYPE_CHECKING:
    from edge.agent import LocalAgent
    from edge.daemon import EdgeDaemon
    from edge.handoff.device import SysfsDeviceState, UplinkProbe
    from edge.handoff.service import EdgeHandoff, EpochHook
    from edge.store import EdgeStore
    from shared.messages import SessionSnapshot
    from shared.session import SessionAgent

log = logging.getLogger(__name__)

Fence = Callable[[str, int], None]
HandoffState = Literal["off", "waiting for hub", "attached"]

# The first retry comes soon (the leaf node link re-dials within a second); later ones
# at most this far apart: one failed JetStream request each, cheap for hub and gateway.
RETRY_FIRST_S: Final = 0.5
RETRY_MAX_S: Final = 5.0
PROBE_TIMEOUT_S: Final = 2.0  # one JetStream API round trip through the leaf


def fencing_hook(guard: ActuationGuard, fence: Fence) -> EpochHook:
    """`on_epoch` for `EdgeHandoff`: raise the guard's fence, persist it when it rose."""

    def observe(session: str, epoch: int) -> None:
        if guard.observe(session, epoch):
            fence(session, epoch)

    return observe


class HandoffAttachment:
    """Owns one task; once attached, the device state and `EdgeHandoff`; once a session
    needed it, the local agent."""

    def __init__(
        self,
        daemon: EdgeDaemon,
        *,
        nc: Client | None,
        guard: ActuationGuard,
        fence: Fence,
        uplink: UplinkProbe | None = None,
        on_attached: Callable[[], object] | None = None,
    ) -> None:
        self._daemon = daemon
        self._nc = nc
        self._guard = guard
        self._fence = fence
        self._uplink = uplink
        self._on_attached = on_attached
        cfg = daemon.config.handoff
        self.state: HandoffState = "waiting for hub" if cfg.enabled and nc else "off"
        self.reason = "" if self.state != "off" else _off_reason(cfg.enabled)
        self.handoff: EdgeHandoff | None = None
        self.attached = asyncio.Event()
        self._agent: LocalAgent | None = None
        self._opening = asyncio.Lock()  # two first sessions at once open one agent
        self._closed = False
        self._device: SysfsDeviceState | None = None
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start attaching in the background (nothing when handoff is off)."""
        if self.state == "off":
            log.info("session handoff off: %s", self.reason)
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"handoff-attach:{self._gw}")
            self._task.add_done_callback(self._ended)

    @property
    def sessions(self) -> int:
        """Sessions this daemon runs now."""
        return len(self.handoff.host.runners) if self.handoff is not None else 0

    @property
    def agent(self) -> LocalAgent | None:
        """The local agent, once a session opened it (None while only listening)."""
        return self._agent

    async def aclose(self) -> None:
        """Stop attaching; close the handoff, the device state, the agent. Safe twice."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            from shared.session.tasks import stop_task  # cancels again if one is swallowed

            await stop_task(task)  # a failed task was logged by `_ended`
        self.handoff = None
        try:
            await self._stack.aclose()
        finally:
            async with self._opening:
                agent, self._agent = self._agent, None
            if agent is not None:
                await agent.aclose()

    # -- the task ------------------------------------------------------------------------

    @property
    def _gw(self) -> str:
        return self._daemon.gateway

    async def _run(self) -> None:
        backoff = Backoff(RETRY_MAX_S, first_s=RETRY_FIRST_S)
        while True:
            try:
                await self._probe()
                await self._attach()
            except (BatonError, NatsError, asyncio.TimeoutError) as exc:
                self._waiting(exc)
                await backoff.wait()
                continue
            self._set("attached", "")
            log.info("hosting agent sessions as edge:%s", self._gw)
            self.attached.set()
            if self._on_attached is not None:
                self._on_attached()
            return

    async def _probe(self) -> None:
        """Whether the hub's leases bucket answers (cheap: no agent opened before it does)."""
        assert self._nc is not None
        js = self._nc.jetstream(domain=subjects.HUB_DOMAIN, timeout=PROBE_TIMEOUT_S)
        try:
            await js.key_value(subjects.LEASES_BUCKET)
        except NatsError as exc:
            raise TransportError(f"the hub's leases bucket: {exc!r}") from exc

    async def _attach(self) -> None:
        from edge.handoff.service import EdgeHandoff

        if self._daemon.config.agent.model_path is not None:
            # A gateway given a model budgets memory for it; loading it here keeps a
            # multi-second GGUF load out of the first handoff back from the cloud, which
            # must load the snapshot within the prepare timeout.
            await self._local_agent()
        elif await self._daemon.store.call(_unpublished_events):
            await self._local_agent()  # its audit stream sends what an earlier run left
        device = await self._device_state()
        assert self._nc is not None
        handoff = EdgeHandoff(self._nc, self._gw, self._load, config=self._daemon.config.handoff,
                              device=device, on_epoch=fencing_hook(self._guard, self._fence))  # fmt: skip
        await handoff.__aenter__()
        try:
            await handoff.serve_open(self._new_session, describe=self._describe)
        except BaseException:
            await handoff.aclose()
            raise
        self._stack.push_async_callback(handoff.aclose)
        self.handoff = handoff

    async def _device_state(self) -> SysfsDeviceState:
        """Opened once (a failed attach keeps it)."""
        from edge.handoff.device import SysfsDeviceState

        if self._device is None:
            cfg = self._daemon.config.handoff
            device = SysfsDeviceState(cfg.thermal_zone, cfg.battery, cfg.poll_s,
                                      uplink=self._uplink)  # fmt: skip
            self._stack.push_async_callback(device.aclose)
            self._device = await device.__aenter__()
        return self._device

    # -- the agent, opened by the first session that needs it ----------------------------

    async def _load(self, snapshot: SessionSnapshot) -> SessionAgent:
        """`AgentLoader` of the handoff: a session handed (or given back) to the edge."""
        from edge.handoff.loader import edge_loader

        agent = await self._local_agent()
        loader = edge_loader(agent.backend, tools=agent.tools, config=agent.config,
                             recorder=agent.sessions.kept())  # fmt: skip
        return await loader(snapshot)

    async def _new_session(self, session: str) -> SessionAgent:
        """`NewAgent` of the open server: the stored session with this id, or a new one."""
        agent = await self._local_agent()
        return await agent.session(session, hosted=True)

    async def _describe(self) -> tuple[str, str]:
        agent = await self._local_agent()
        return agent.backend.name, agent.backend.notice or ""

    async def _local_agent(self) -> LocalAgent:
        """The local agent, opened once; `SessionError` saying why when it cannot be."""
        from edge.agent import EdgeState, LocalAgent
        from shared.session import SessionError

        async with self._opening:
            if self._closed:
                raise SessionError(f"edge:{self._gw} is stopping")
            if self._agent is None:
                daemon = self._daemon
                try:
                    self._agent = await LocalAgent.open(
                        daemon.config, daemon.config.agent, nc=self._nc, store=daemon.store,
                        state=EdgeState.of_daemon(daemon),
                    )  # fmt: skip
                except BatonError as exc:
                    raise SessionError(f"the local agent cannot be opened: {exc}") from exc
                log.info("local agent open: %s", self._agent.backend.name,
                         extra={"gateway": self._gw})  # fmt: skip
            return self._agent

    def _waiting(self, exc: BaseException) -> None:
        reason = str(exc) or repr(exc)
        if self.state != "waiting for hub" or not self.reason:
            log.warning("agent sessions not hosted yet (%s); retrying in the background",
                        reason, extra={"gateway": self._gw})  # fmt: skip
        self._set("waiting for hub", reason)

    def _set(self, state: HandoffState, reason: str) -> None:
        self.state, self.reason = state, reason

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self._set("off", f"failed: {task.exception()!r}")
        log.error("attaching session handoff failed; sessions are not hosted",
                  exc_info=task.exception())  # fmt: skip


def _off_reason(enabled: bool) -> str:
    return "[handoff] enabled = false" if not enabled else "no leaf connection"


def _unpublished_events(store: EdgeStore) -> bool:
    """Whether the agent's outbox (`edge.agent.store`'s `agent_events`) holds events not
    yet on the hub; on the store's thread, with plain sqlite3 (no agent modules)."""
    try:
        row = store.conn.execute("SELECT 1 FROM agent_events WHERE published = 0 LIMIT 1")
        return row.fetchone() is not None
    except sqlite3.OperationalError:  # no such table: no agent has run on this store
        return False
