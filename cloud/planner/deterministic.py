"""The deterministic planner: the shipped scenarios, with no model and no surprises.

    anomaly          (a model flags a device, e.g. bearing wear on a pump)
                     → maintenance: reduce the load, open a maintenance ticket
    repeated_action  (a heat rule keeps firing on a site)
                     → rebalance: lower the hot devices' setpoints, raise cool peers'
    offline          (a device's last will, or its twin, says offline)
                     → check: diagnose from the gateway, open a check ticket
    schedule         → a check for every offline device the fleet view knows

Every step that changes a device has a compensation restoring what the twin reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloud.agents.base import TRIGGER_KINDS, AgentContext, Proposal, Trigger
from cloud.planner.actions import ACTIONS
from cloud.planner.config import ScenarioConfig
from cloud.planner.scenarios import check, maintenance, rebalance

# Offline devices a scheduled round plans for at most (the rest wait for the next round).
MAX_SCHEDULED_CHECKS = 16


class DeterministicPlanner:
    """The fallback planner agent: always available, handles every trigger kind."""

    id = "deterministic"
    handles = TRIGGER_KINDS
    tools = frozenset(ACTIONS)

    def __init__(self, scenarios: ScenarioConfig | None = None) -> None:
        self._cfg = scenarios or ScenarioConfig()

    async def propose(self, trigger: Trigger, ctx: AgentContext) -> Sequence[Proposal]:
        gw, device = trigger.gw, trigger.device
        if trigger.kind == "anomaly" and gw and device:
            return [maintenance(self._cfg, trigger, ctx, gw, device)]
        if trigger.kind == "repeated_action" and gw and self._heat(trigger):
            hot = trigger.devices or ((device,) if device else ())
            found = rebalance(self._cfg, trigger, ctx, gw, hot)
            return [found] if found else []
        if trigger.kind == "offline" and gw and device:
            return [check(trigger, ctx, gw, device)]
        if trigger.kind == "schedule":
            return self._sweep(trigger, ctx)
        return []

    def _heat(self, trigger: Trigger) -> bool:
        rule = str(trigger.detail.get("rule", ""))
        return any(word in rule for word in self._cfg.heat_rules)

    def _sweep(self, trigger: Trigger, ctx: AgentContext) -> list[Proposal]:
        offline = [t for t in ctx.fleet.devices() if not t.online][:MAX_SCHEDULED_CHECKS]
        return [check(trigger, ctx, t.gw, t.device) for t in offline]
