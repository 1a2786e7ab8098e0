"""`EdgeHandoff`: the gateway's side of session handoff, for the edge daemon.

    async with EdgeHandoff(leaf_nc, "gw1", loader, config=cfg.handoff,
                           device=device, on_epoch=guard.observe) as handoff:
        await handoff.open(agent_session)             # a new session, owned here
        async for event in handoff.ask("s1", "why did the fan turn on?"): ...
        report = await handoff.handoff("s1", "cloud")  # what `baton handoff` asks for

On top of `SessionHost` (owner `edge:<gateway>`, reached through the leaf), it runs the
`HandoffPolicy`: the device's state (temperature, battery, the uplink coming back) moves
this gateway's sessions, and the agent's own `handoff_request`s (a full context, a
question that needs the fleet) go through it too. Sessions it hands to the cloud it
follows (WebRTC, NATS as fallback), so a chat at the gateway keeps streaming, and it
takes them back by CAS if the cloud owner dies. `on_epoch(session, epoch)` hears every
epoch of this gateway's sessions, so the actuation guard fences a late local command
as soon as the cloud owns the session, before the cloud has sent anything.
`serve_open(new_agent)` answers `handoff.<gw>.open` (`opener.OpenServer`): `baton chat`
then opens its sessions here and talks to them as a client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from nats.aio.client import Client

from edge.handoff.config import HandoffConfig
from edge.handoff.device import DeviceState, MemoryDeviceState
from edge.handoff.opener import Describe, NewAgent, OpenServer
from shared.messages import AgentEventBase, HandoffRequest
from shared.session import (
    AgentLoader,
    HandoffReport,
    Lease,
    Owner,
    SessionAgent,
    SessionHost,
    SessionRunner,
    Side,
)
from shared.session.board import Seen
from shared.session.policy import Decision, HandoffPolicy
from shared.session.tasks import stop_task

log = logging.getLogger(__name__)

EpochHook = Callable[[str, int], None]


class EdgeHandoff:
    """An async context manager; `aclose()` drains the sessions it runs (safe twice)."""

    def __init__(
        self,
        nc: Client,
        gateway: str,
        loader: AgentLoader,
        *,
        config: HandoffConfig | None = None,
        device: DeviceState | None = None,
        on_epoch: EpochHook | None = None,
    ) -> None:
        self.gateway = gateway
        self.config = config or HandoffConfig()
        self.device = device or MemoryDeviceState()
        self.policy = HandoffPolicy(self.config.policy())
        self.host = SessionHost(
            nc, Owner("edge", gateway), loader, gw=gateway,
            settings=self.config.settings(), follow_after_handoff=True,
        )  # fmt: skip
        self._on_epoch = on_epoch
        self._task: asyncio.Task[None] | None = None
        self._moving: set[str] = set()

    async def __aenter__(self) -> EdgeHandoff:
        await self.host.__aenter__()
        self.host.on_agent_request = self._agent_request
        if self._on_epoch is not None:
            self.host.board.listen(self._epoch_seen)
            for lease in self.sessions():
                self._on_epoch(lease.session, lease.epoch)
        self._task = asyncio.create_task(self._policy_loop(), name=f"handoff-policy:{self.gateway}")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
        await self.host.aclose()

    # -- what the daemon and `baton chat` call ------------------------------------------

    def sessions(self) -> list[Lease]:
        """This gateway's sessions (owned here or in the cloud)."""
        return [lease for lease in self.host.sessions() if lease.value.gw == self.gateway]

    async def open(self, agent: SessionAgent, session: str) -> SessionRunner:
        return await self.host.open(agent, session, gw=self.gateway)

    def ask(self, session: str, text: str) -> AsyncIterator[AgentEventBase]:
        return self.host.ask(session, text)

    async def serve_open(self, new_agent: NewAgent, *, describe: Describe | None = None) -> None:
        """Answer `handoff.<gw>.open`: clients (`baton chat`) open sessions here."""
        await OpenServer(self.host, new_agent, describe=describe).start()

    async def handoff(self, session: str, to: Side, *, reason: str = "request") -> HandoffReport:
        report = await self.host.handoff(session, to, reason=reason)
        if report.ok:
            self.policy.moved(session, to, now=asyncio.get_running_loop().time())
        return report

    # -- triggers -----------------------------------------------------------------------

    def _agent_request(self, runner: SessionRunner, event: HandoffRequest) -> bool:
        loop = asyncio.get_running_loop()
        uplink = self.device.signals.uplink
        decision = self.policy.on_agent(
            runner.session, event, side="edge", uplink=uplink, now=loop.time()
        )
        if decision is not None:
            log.info("session %s asks to move: %s", runner.session, decision.reason)
        return decision is not None

    async def _policy_loop(self) -> None:
        while True:
            changed = self.device.changed()
            await self._evaluate()
            await changed.wait()

    async def _evaluate(self) -> None:
        now = asyncio.get_running_loop().time()
        signals = self.device.signals
        for lease in self.sessions():
            decision = self.policy.on_device(lease.session, signals, side=lease.value.side, now=now)
            if decision is not None and lease.session not in self._moving:
                await self._move(lease.session, decision)

    async def _move(self, session: str, decision: Decision) -> None:
        self._moving.add(session)
        try:
            report = await self.host.handoff(session, decision.to, reason=decision.reason)
        finally:
            self._moving.discard(session)
        if not report.ok:
            log.warning("moving %s to %s failed at %s: %s", session, decision.to,
                        report.step, report.error)  # fmt: skip

    def _epoch_seen(self, session: str, seen: Seen | None) -> None:
        if seen is not None and seen.lease.value.gw == self.gateway and self._on_epoch:
            self._on_epoch(session, seen.lease.epoch)
