"""Helpers of the integration tests (imported by `conftest.py` and the test module).

edge_config(...)     an `EdgeConfig` for gateway gw1 on the topology's leaf: uplink and
                     downlink on, fast retries, no HTTP
cloud_config(...)    a `CloudConfig` on the topology's hub: planner on (short step
                     deadlines, no schedule), fast reconcile, API on a free port
LoadShed             a plug-in planner agent (registered by config, as an operator's own
                     would be) whose plan also targets a pump that never answers
PlanWatch            waits on the orchestrator's event bus for a plan to end
HubTap               a core subscription on the hub's `fleet.gw1.<kind>.<dev>`: what the
                     edge forwarded, as the cloud receives it
running(sim)         runs a `Simulator` in a named task until the block ends
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nats
from firmware_sim import Simulator
from nats.aio.client import Client
from nats.aio.msg import Msg

from cloud.agents import AgentContext, Proposal, Trigger
from cloud.config import CloudConfig
from cloud.orchestrator import Orchestrator
from edge.config import EdgeConfig
from shared import codec, subjects
from shared.actions import SET_LOAD
from shared.compat import timeout
from shared.messages import Compensation, Plan, PlanStep
from shared.natsrun import LocalTopology

GW = "gw1"
PUMP = "pump-0"
# Listed in the LoadShed plan, but no device by that name is connected: it never answers.
GHOST = "pump-9"
# Loopback round trips take milliseconds; this only bounds a broken test.
WAIT_S = 20.0
# How long a plan step has to be acknowledged: seconds on loopback, yet short enough that
# a step nobody answers fails fast.
STEP_DEADLINE_S = 3.0
ENDED = frozenset({"succeeded", "failed", "compensated"})


def edge_config(topology: LocalTopology, state_dir: Path, **fields: Any) -> EdgeConfig:
    data: dict[str, Any] = {
        "gateway": GW,
        "nats_url": topology.leaf.client_url,
        "state_dir": state_dir,
        "http": {"enabled": False},
        "uplink": {"enabled": True, "hub_ack_timeout_s": 1.0, "retry_backoff_max_s": 0.3},
        "downlink": {"enabled": True},
        "store": {"flush_interval_ms": 20},
    }
    data.update(fields)
    return EdgeConfig(**data)


def cloud_config(topology: LocalTopology, state_dir: Path) -> CloudConfig:
    data: dict[str, Any] = {
        "nats_url": topology.hub.client_url,
        "replica": "a",
        "state_dir": state_dir,
        "http": {"port": 0},
        "ingest": {"workers": 1, "batch": 64},
        "reconcile_interval_s": 0.2,
        "planner": {
            "step_deadline_s": STEP_DEADLINE_S,
            "lease_s": 2.0,
            "schedule_s": 3600.0,  # no scheduled rounds: every plan here has a cause
            "entry_points": False,
            "agents": [{"factory": "integkit:LoadShed", "priority": 50}],
        },
    }
    return CloudConfig(**data)


class LoadShed:
    """On a `request` trigger for a site: run every listed pump at half load, each step
    undone by restoring full load. It lists `GHOST`, which never acknowledges."""

    id = "load-shed"
    handles = frozenset({"request"})
    tools = frozenset({SET_LOAD})

    async def propose(self, trigger: Trigger, ctx: AgentContext) -> list[Proposal]:
        steps = [
            PlanStep(
                index=index,
                gw=GW,
                device=device,
                action=SET_LOAD,
                params={"load": 0.5},
                deadline_ms=ctx.step_deadline_ms,
                compensation=Compensation(action=SET_LOAD, params={"load": 1.0}),
            )
            for index, device in enumerate((PUMP, GHOST))
        ]
        plan = Plan(trigger=trigger.kind, reason="shed load across the site", steps=steps)
        return [Proposal(plan, f"load-shed.{GW}")]


class PlanWatch:
    """Plan records as the orchestrator publishes them on its event bus."""

    def __init__(self, orch: Orchestrator) -> None:
        self._sub = orch.bus.subscribe({"plan"})

    async def ended(self, where: Callable[[dict[str, Any]], bool] = lambda _: True) -> Any:
        """The first plan (as JSON) that ends and satisfies `where`."""
        async with timeout(WAIT_S * 2):
            while True:
                event = await self._sub.next(WAIT_S * 2)
                if event is None:
                    raise RuntimeError("the orchestrator's event bus closed")
                if event.data["status"] in ENDED and where(event.data):
                    return event.data

    def close(self) -> None:
        self._sub.close()


class HubTap:
    """Messages the hub receives on `fleet.<gw>.<kind>.<device>`, decoded as `cls`."""

    def __init__(self, nc: Client, kind: str, device: str, cls: type[Any]) -> None:
        self._nc = nc
        self._subject = subjects.fleet(GW, kind, device)
        self._cls = cls
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._sub: Any = None

    async def __aenter__(self) -> HubTap:
        self._sub = await self._nc.subscribe(self._subject, cb=self._on_msg)
        await self._nc.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        self._queue.put_nowait(msg)

    async def first(self, where: Callable[[Any], bool]) -> tuple[Any, Msg]:
        """The first message (decoded, raw) for which `where` holds."""
        async with timeout(WAIT_S):
            while True:
                msg = await self._queue.get()
                body = codec.decode(msg.data, self._cls)
                if where(body):
                    return body, msg


@contextlib.asynccontextmanager
async def hub_client(topology: LocalTopology) -> AsyncIterator[Client]:
    nc = await nats.connect(topology.hub.client_url)
    try:
        yield nc
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def running(sim: Simulator) -> AsyncIterator[Simulator]:
    """`sim.run()` in a named task; stopped, drained and awaited when the block ends."""
    task = asyncio.create_task(sim.run(), name="integration-sim")
    try:
        yield sim
    finally:
        sim.stop()
        await task
