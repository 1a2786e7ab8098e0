"""Trigger → agents → proposals → opened plans (each then run as a saga).

Dedupe happens twice: cheaply before planning (a plan for the same trigger scope is open,
or ended less than `cooldown_s` ago, in the mirror: no model call), and authoritatively
when opening (the proposal key is locked by a KV create, so two replicas planning for the
same event open one plan; a key that ended less than `cooldown_s` ago is not reopened).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from cloud.agents.base import TRIGGER_KINDS, AgentContext, Proposal, Trigger, TriggerKind
from cloud.agents.registry import AgentRegistry
from cloud.errors import Conflict, PlanError
from cloud.planner.lease import Leases
from cloud.planner.mirror import PlanMirror
from cloud.planner.pool import SagaPool
from cloud.planner.records import PlanRecord, StepEvent
from cloud.planner.store import PlanStore
from shared.messages import Plan, new_id, now_ms

log = logging.getLogger(__name__)

# `request_plan` trigger spec: kind[:gw[/device]].
_SPEC = re.compile(
    r"^(?P<kind>[a-z_]+)(?::(?P<gw>[A-Za-z0-9][\w-]*)(?:/(?P<dev>[A-Za-z0-9][\w-]*))?)?$"
)


@dataclass(frozen=True, slots=True)
class PlanningDeps:
    registry: AgentRegistry
    ctx: AgentContext
    mirror: PlanMirror
    store: PlanStore
    leases: Leases
    pool: SagaPool
    counters: Counter[str]
    cooldown_ms: int
    on_saved: Callable[[PlanRecord, int], None]


class Planning:
    def __init__(self, deps: PlanningDeps) -> None:
        self._d = deps

    async def plan(self, trigger: Trigger) -> list[Plan]:
        """Plan for `trigger`; the plans opened (none when deduped or nobody proposes)."""
        counters = self._d.counters
        counters[f"triggers.{trigger.kind}"] += 1
        since = now_ms() - self._d.cooldown_ms
        if trigger.kind != "schedule" and self._d.mirror.scope_busy(trigger.scope, since):
            counters["plans.deduped"] += 1
            return []
        outcome = await self._d.registry.propose(trigger, self._d.ctx)
        if outcome.fell_back:
            counters["planner.fallbacks"] += 1
            log.info("planned by %s after %s failed", outcome.agent, ", ".join(outcome.failed))
        opened = []
        for proposal in outcome.proposals:
            plan = await self._open(proposal, trigger, outcome.agent or "")
            if plan is not None:
                opened.append(plan)
        return opened

    async def _open(self, proposal: Proposal, trigger: Trigger, agent: str) -> Plan | None:
        since = now_ms() - self._d.cooldown_ms
        if self._d.mirror.key_busy(proposal.key, since):
            self._d.counters["plans.deduped"] += 1
            return None
        plan = self._stamp(proposal.plan, trigger, agent)
        if not await self._d.store.lock(proposal.key, plan.plan_id):
            self._d.counters["plans.deduped"] += 1
            return None
        try:
            epoch = await self._create(plan, proposal.key, trigger, agent)
        except BaseException:
            await self._d.store.unlock(proposal.key, plan.plan_id)
            raise
        self._d.counters["plans.opened"] += 1
        log.info("opened plan %s (%s) by %s", plan.plan_id, proposal.key, agent,
                 extra={"plan": plan.plan_id, "key": proposal.key, "agent": agent})  # fmt: skip
        self._d.pool.start(plan.plan_id, epoch)
        return plan

    async def _create(self, plan: Plan, key: str, trigger: Trigger, agent: str) -> int:
        epoch = await self._d.leases.claim(plan.plan_id)
        if epoch is None:  # a fresh random id: only a bug or a collision gets here
            raise Conflict(f"lease of new plan {plan.plan_id} is taken")
        replica = self._d.ctx.replica
        opened = StepEvent(event="opened", replica=replica, detail=f"by {agent}: {trigger.reason}")
        record = PlanRecord(
            plan=plan, key=key, scope=trigger.scope, owner=replica, history=[opened]
        )
        try:
            rev = await self._d.store.create(record)
        except BaseException:
            await self._d.leases.release(plan.plan_id)
            raise
        self._d.on_saved(record, rev)
        return epoch

    def _stamp(self, plan: Plan, trigger: Trigger, agent: str) -> Plan:
        """The plan as stored: our id, steps indexed in order, nothing run yet."""
        default = self._d.ctx.step_deadline_ms
        steps = [
            s.model_copy(update={"index": i, "status": "pending", "deadline_ms": s.deadline_ms or default})
            for i, s in enumerate(plan.steps)
        ]  # fmt: skip
        changes = {"plan_id": new_id(), "steps": steps, "status": "pending", "epoch": 0,
                   "planner": agent[:64], "trigger": trigger.kind, "created_ms": now_ms()}  # fmt: skip
        return plan.model_copy(update=changes)


def parse_spec(spec: str, reason: str) -> Trigger:
    """`anomaly:gw1/pump-1`, `offline:gw1/pump-3`, `repeated_action:gw1`, `schedule`."""
    match = _SPEC.match(spec.strip())
    if match is None or match["kind"] not in TRIGGER_KINDS:
        kinds = ", ".join(sorted(TRIGGER_KINDS))
        raise PlanError(f"trigger {spec!r}: expected KIND[:GATEWAY[/DEVICE]], KIND one of {kinds}")
    kind = cast(TriggerKind, match["kind"])
    return Trigger(kind, match["gw"], match["dev"], reason, {"requested": True})
