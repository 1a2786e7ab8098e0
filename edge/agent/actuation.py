"""`LocalActuation`: the edge's own guard and actuator, for an agent outside the daemon.

`baton chat` runs in its own process beside the daemon. Its commands still pass the
edge's `ActuationGuard` with the daemon's policy (the rules' actions, `[actuate]` allow
and bounds), are recorded in the same `actions` table, and are fenced against the same
`fencing` table: the guard is rebuilt from it before each command, so an epoch the daemon
saw a moment ago (a newer owner of the session) refuses this process's stale one too.
"""

from __future__ import annotations

from edge.actuate import ActuationGuard, Actuator, GuardPolicy
from edge.config import EdgeConfig
from edge.ingest.ports import CommandSink
from edge.ops import EdgeMetrics
from edge.reflex.engine import RuleSet
from edge.store import AsyncStore, AuditWriter, EdgeStore
from shared.messages import Command

ORIGIN = "session"


class LocalActuation:
    def __init__(self, config: EdgeConfig, store: AsyncStore, sink: CommandSink) -> None:
        actions = RuleSet.build(config.rules).actions | {m.action for m in config.models}
        self.policy = GuardPolicy.build(config.actuate, actions)
        self.metrics = EdgeMetrics()
        self._store = store
        self._writer = AuditWriter(store, config.store.flush_interval_ms / 1000)
        self._actuator = Actuator(
            config.gateway, sink, ActuationGuard(self.policy), self._writer, self.metrics,
            fmt=config.actuate.format,
        )  # fmt: skip

    async def execute(self, cmd: Command) -> None:
        """Guard (fresh fencing), send, record; `GuardRefused` when refused."""
        epochs = await self._store.call(EdgeStore.fencing)
        self._actuator.guard = ActuationGuard(self.policy, epochs)
        try:
            await self._actuator.execute(cmd, ORIGIN)
        finally:
            await self._writer.flush()  # the action row and the raised epoch, now
