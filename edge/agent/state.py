"""`EdgeState`: what the agent's tools read and do on a gateway, in one place.

Reads go to the gateway's SQLite through the daemon's `AsyncStore` (rollups, decisions,
actions, twin) and to the rule set in force; actuation goes to an `execute` callable
that passes the edge's `ActuationGuard` (the daemon's `execute`, or `LocalActuation`
for a `baton chat` running beside it). Built two ways:

    EdgeState.of_daemon(daemon)                          inside the edge daemon
    EdgeState(gw, store, rules=..., execute=...)         anywhere else (CLI, tests)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from edge.agent.readings import Recent, RecentReadings
from edge.config import ModelConfig, RuleConfig
from edge.store import AsyncStore, EdgeStore, TwinRecord
from shared.messages import Command

if TYPE_CHECKING:
    from edge.daemon import EdgeDaemon

Execute = Callable[[Command], Awaitable[None]]

_DEVICES = """
SELECT device FROM rollups UNION SELECT device FROM twin UNION SELECT device FROM decisions
ORDER BY device
"""


class EdgeState:
    def __init__(
        self,
        gateway: str,
        store: AsyncStore,
        *,
        rules: Callable[[], Sequence[RuleConfig]],
        models: Callable[[], Sequence[ModelConfig]] = tuple,
        execute: Execute | None = None,
        readings: RecentReadings | None = None,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self._rules = rules
        self._models = models
        self._execute = execute
        self.readings = readings or RecentReadings()

    @classmethod
    def of_daemon(cls, daemon: EdgeDaemon, readings: RecentReadings | None = None) -> EdgeState:
        """The running daemon's state: its store, its rules in force, its guarded actuator."""

        async def execute(cmd: Command) -> None:
            await daemon.execute(cmd, "session")

        return cls(
            daemon.gateway, daemon.store,
            rules=lambda: [rule.config for rule in daemon.engine.rules.rules],
            models=lambda: [model.config for model in daemon.engine.models],
            execute=execute, readings=readings,
        )  # fmt: skip

    def rules(self) -> Sequence[RuleConfig]:
        return self._rules()

    def models(self) -> Sequence[ModelConfig]:
        return self._models()

    @property
    def can_actuate(self) -> bool:
        return self._execute is not None

    async def execute(self, cmd: Command) -> None:
        """Through the guard; raises `GuardRefused` (recorded by the actuator)."""
        if self._execute is None:
            raise RuntimeError("no actuator")
        await self._execute(cmd)

    async def devices(self) -> list[str]:
        known = await self.store.call(_device_names)
        return sorted(set(known) | set(self.readings.devices()))

    async def rollups(self, device: str, since_ms: int) -> list[dict[str, Any]]:
        return await self.store.call(EdgeStore.rollups, device, since_ms)

    async def decisions(self, device: str | None, limit: int) -> list[dict[str, Any]]:
        return await self.store.call(EdgeStore.decisions, device, limit)

    async def action(self, cmd_id: str) -> dict[str, Any] | None:
        return await self.store.call(_action, cmd_id)

    async def twins(self) -> dict[str, TwinRecord]:
        return await self.store.call(EdgeStore.twins)

    def recent(self, device: str, limit: int) -> list[Recent]:
        return self.readings.latest(device, limit)


def _device_names(store: EdgeStore) -> list[str]:
    return [row[0] for row in store.db.execute(_DEVICES).fetchall()]


def _action(store: EdgeStore, cmd_id: str) -> dict[str, Any] | None:
    rows = list(store.db.table("actions").rows_where("cmd_id = ?", [cmd_id], limit=1))
    return rows[0] if rows else None
