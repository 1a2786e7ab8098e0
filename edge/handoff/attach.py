"""`attach_handoff`: the edge daemon's one call to take part in session handoff.

    self.handoff = await attach_handoff(self, self._stack, nc=self._nc,
                                        guard=self._actuator.guard, fence=self._writer.fence)

It opens, on the daemon's own store, leaf connection and guarded `execute`, the local
agent (its model, or the rule backend), the device's state (sysfs), and an `EdgeHandoff`
whose every new lease epoch raises the actuation guard's fence for that session and
persists it (the `fencing` table, as a command's epoch is), so a local command of a
session the cloud now owns is refused before the cloud has sent anything, also after a
restart. Each is pushed on `stack`, so the daemon closes them in reverse, before its
connection and store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from nats.aio.client import Client

from edge.actuate import ActuationGuard
from edge.agent import EdgeState, LocalAgent
from edge.handoff.device import SysfsDeviceState
from edge.handoff.loader import edge_loader
from edge.handoff.service import EdgeHandoff, EpochHook

if TYPE_CHECKING:
    from edge.daemon import EdgeDaemon

log = logging.getLogger(__name__)

Fence = Callable[[str, int], None]


def fencing_hook(guard: ActuationGuard, fence: Fence) -> EpochHook:
    """`on_epoch` for `EdgeHandoff`: raise the guard's fence, persist it when it rose."""

    def observe(session: str, epoch: int) -> None:
        if guard.observe(session, epoch):
            fence(session, epoch)

    return observe


async def attach_handoff(
    daemon: EdgeDaemon,
    stack: contextlib.AsyncExitStack,
    *,
    nc: Client | None,
    guard: ActuationGuard,
    fence: Fence,
) -> EdgeHandoff | None:
    """A started `EdgeHandoff` for the running daemon; None when `[handoff] enabled =
    false` or the daemon has no leaf connection (it then takes part in no handoff)."""
    cfg = daemon.config.handoff
    if not cfg.enabled or nc is None:
        log.info("session handoff off: %s", "disabled" if nc else "no leaf connection")
        return None
    agent = await LocalAgent.open(
        daemon.config, daemon.config.agent, nc=nc, store=daemon.store,
        state=EdgeState.of_daemon(daemon),
    )  # fmt: skip
    stack.push_async_callback(agent.aclose)
    device = SysfsDeviceState(cfg.thermal_zone, cfg.battery, cfg.poll_s)
    stack.push_async_callback(device.aclose)
    await device.__aenter__()
    # The session store keeps events on the gateway; the runner appends them to the hub.
    loader = edge_loader(agent.backend, tools=agent.tools, config=agent.config,
                         recorder=agent.sessions)  # fmt: skip
    handoff = EdgeHandoff(nc, daemon.gateway, loader, config=cfg, device=device,
                          on_epoch=fencing_hook(guard, fence))  # fmt: skip
    stack.push_async_callback(handoff.aclose)
    await handoff.__aenter__()
    return handoff
