"""`HandoffAttachment`: the edge daemon hosts agent sessions, as soon as the hub lets it.

    attachment = HandoffAttachment(daemon, nc=leaf, guard=guard, fence=writer.fence,
                                   uplink=lambda: uplink.stats().hub_connected)
    attachment.start()          # returns at once: a named task does the rest
    attachment.state            # "off" | "waiting for hub" | "attached"
    await attachment.aclose()   # the task, then the handoff, device state, agent

A gateway must work offline, so the daemon never waits for this. The task asks the hub's
`leases` bucket (through the leaf) whether it answers, retrying with backoff and logging
only when the state changes; once it does, it opens, on the daemon's own store, leaf
connection and guarded `execute`, the local agent (its model, or the rule backend), the
device's state (sysfs, and whether the uplink reaches the hub), and an `EdgeHandoff`
whose every new lease epoch raises the actuation guard's fence for that session and
persists it (the `fencing` table, as a command's epoch is), so a local command of a
session the cloud now owns is refused before the cloud has sent anything, also after a
restart. It also answers `handoff.<gw>.open`: `baton chat` opens its sessions here, and
they stay here when the chat exits.

`aclose()` closes what was opened in reverse order; the daemon calls it before it closes
its connection and store. The agent and protocol modules are imported by the task, not
at daemon start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

from nats.aio.client import Client
from nats.errors import Error as NatsError

from edge.actuate import ActuationGuard
from edge.handoff.device import UplinkProbe
from edge.uplink.backoff import Backoff
from shared import subjects
from shared.errors import BatonError, TransportError
from shared.session.tasks import stop_task

if TYPE_CHECKING:
    from edge.agent import LocalAgent
    from edge.daemon import EdgeDaemon
    from edge.handoff.device import SysfsDeviceState
    from edge.handoff.service import EdgeHandoff, EpochHook

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
    """Owns one task and, once attached, the agent, device state and `EdgeHandoff`."""

    def __init__(
        self,
        daemon: EdgeDaemon,
        *,
        nc: Client | None,
        guard: ActuationGuard,
        fence: Fence,
        uplink: UplinkProbe | None = None,
    ) -> None:
        self._daemon = daemon
        self._nc = nc
        self._guard = guard
        self._fence = fence
        self._uplink = uplink
        cfg = daemon.config.handoff
        self.state: HandoffState = "waiting for hub" if cfg.enabled and nc else "off"
        self.reason = "" if self.state != "off" else _off_reason(cfg.enabled)
        self.handoff: EdgeHandoff | None = None
        self.attached = asyncio.Event()
        self._agent: LocalAgent | None = None
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

    async def aclose(self) -> None:
        """Stop attaching; close the handoff, the device state, the agent. Safe twice."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            await stop_task(task)  # a failed task was logged by `_ended`
        self.handoff = None
        await self._stack.aclose()

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
        from edge.handoff.loader import edge_loader
        from edge.handoff.service import EdgeHandoff

        agent, device = await self._parts()
        loader = edge_loader(agent.backend, tools=agent.tools, config=agent.config,
                             recorder=agent.sessions.kept())  # fmt: skip
        assert self._nc is not None
        handoff = EdgeHandoff(self._nc, self._gw, loader, config=self._daemon.config.handoff,
                              device=device, on_epoch=fencing_hook(self._guard, self._fence))  # fmt: skip
        await handoff.__aenter__()
        try:
            await handoff.serve_open(lambda sid: agent.session(sid, hosted=True),
                                     model=agent.backend.name, notice=agent.backend.notice or "")  # fmt: skip
        except BaseException:
            await handoff.aclose()
            raise
        self._stack.push_async_callback(handoff.aclose)
        self.handoff = handoff

    async def _parts(self) -> tuple[LocalAgent, SysfsDeviceState]:
        """The agent and the device state, opened once (a failed attach keeps them)."""
        from edge.agent import EdgeState, LocalAgent
        from edge.handoff.device import SysfsDeviceState

        daemon = self._daemon
        if self._agent is None:
            self._agent = await LocalAgent.open(
                daemon.config, daemon.config.agent, nc=self._nc, store=daemon.store,
                state=EdgeState.of_daemon(daemon),
            )  # fmt: skip
            self._stack.push_async_callback(self._agent.aclose)
        if self._device is None:
            cfg = daemon.config.handoff
            device = SysfsDeviceState(cfg.thermal_zone, cfg.battery, cfg.poll_s,
                                      uplink=self._uplink)  # fmt: skip
            self._stack.push_async_callback(device.aclose)
            self._device = await device.__aenter__()
        return self._agent, self._device

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
