"""One plan run as a saga by the replica holding its lease.

    forward     for each step in order: check preconditions, store "sent" with the absolute
                deadline, publish the command, wait for its CommandAck until that deadline
    compensate  a step failed (refused, deadline passed, precondition unmet): later steps
                are skipped, and every completed step's compensation runs in reverse order,
                each acknowledged the same way
    finish      succeeded | compensated | failed (a compensation failed), lock released

Every transition is stored (compare-and-set) *before* its command is published, so a
replica that takes over re-sends exactly the commands in flight (same cmd_id, deduped)
and waits for the deadlines the edge was given. A lost compare-and-set means another
replica owns the saga now: `Conflict` propagates and this runner stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from nats.js import JetStreamContext

from cloud.errors import Conflict
from cloud.planner.acks import AckBook
from cloud.planner.commands import Slot, publish, step_command
from cloud.planner.preconditions import unmet
from cloud.planner.records import EventKind, PlanRecord, StepEvent
from cloud.planner.store import PlanStore
from cloud.twins.view import FleetView
from shared.messages import CommandAck, now_ms
from shared.messages.plan import PlanStatus, StepStatus

log = logging.getLogger(__name__)

# Attempts at the claiming write when a paused previous owner writes at the same moment.
TAKE_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class SagaDeps:
    js: JetStreamContext
    store: PlanStore
    acks: AckBook
    fleet: FleetView
    replica: str
    on_saved: Callable[[PlanRecord, int], None]


class Saga:
    def __init__(self, deps: SagaDeps, plan_id: str, epoch: int) -> None:
        self._d = deps
        self._plan_id = plan_id
        self._epoch = epoch
        self._rec: PlanRecord | None = None
        self._rev = 0

    @property
    def rec(self) -> PlanRecord:
        if self._rec is None:
            raise RuntimeError("saga not taken yet")
        return self._rec

    async def run(self) -> PlanRecord | None:
        """Run to the end; None when the plan is gone or had already ended."""
        if not await self._take():
            return None
        if self.rec.phase == "forward":
            failed = await self._forward()
            if failed is not None:
                await self._begin_compensation(failed)
        if self.rec.phase == "compensate":
            await self._compensate()
        await self._finish()
        return self.rec

    async def _take(self) -> bool:
        for _ in range(TAKE_ATTEMPTS):
            loaded = await self._d.store.load(self._plan_id)
            if loaded is None or loaded[0].phase == "done":
                return False
            self._rec, self._rev = loaded
            previous = self.rec.owner or "-"
            event = self._event("claimed", detail=f"previous owner {previous}")
            taken = self.rec.with_plan(status="running", epoch=self._epoch)
            try:
                await self._save(taken.log(event, owner=self._d.replica))
                return True
            except Conflict:
                continue
        raise Conflict(f"plan {self._plan_id} kept changing while being claimed")

    async def _forward(self) -> int | None:
        """Index of the step that failed, or None when all were acknowledged."""
        for index, step in enumerate(self.rec.plan.steps):
            # "failed": the previous owner stopped between the failure and compensating.
            if step.status == "failed" or (step.status != "acked" and not await self._step(index)):
                return index
        return None

    async def _step(self, index: int) -> bool:
        slot = Slot(self._plan_id, index)
        step = self.rec.step(index)
        if step.status == "pending":
            reason = unmet(step, self._d.fleet)
            if reason is not None:
                await self._mark(slot, "failed", "failed", reason)
                return False
            deadline = now_ms() + step.deadline_ms
            await self._mark(slot, "sent", "sent", deadlines={slot.cmd_id: deadline})
        ack = await self._send_and_wait(slot)
        if ack is None or not ack.ok:
            await self._mark(slot, "failed", "failed", _why(ack))
            return False
        await self._mark(slot, "acked", "acked")
        return True

    async def _begin_compensation(self, failed: int) -> None:
        rec = self.rec
        for index, step in enumerate(rec.plan.steps):
            if index > failed and step.status == "pending":
                rec = rec.with_step(index, "skipped").log(self._event("skipped", index))
        await self._save(rec.model_copy(update={"phase": "compensate"}))

    async def _compensate(self) -> None:
        for index in reversed(range(len(self.rec.plan.steps))):
            step = self.rec.step(index)
            if step.status in ("acked", "compensating") and step.compensation is not None:
                await self._undo(index)

    async def _undo(self, index: int) -> None:
        slot = Slot(self._plan_id, index, undo=True)
        step = self.rec.step(index)
        if step.status == "acked":
            deadline = now_ms() + step.deadline_ms
            await self._mark(slot, "compensating", "undo_sent", deadlines={slot.cmd_id: deadline})
        ack = await self._send_and_wait(slot)
        if ack is not None and ack.ok:
            await self._mark(slot, "compensated", "compensated")
        else:
            await self._mark(slot, "failed", "undo_failed", _why(ack))

    async def _finish(self) -> None:
        status = _outcome(self.rec)
        event = self._event("finished", detail=status)
        await self._save(self.rec.with_plan(status=status).log(event, phase="done"))
        await self._d.store.unlock(self.rec.key, self._plan_id)
        log.info("plan %s %s", self._plan_id, status, extra={"plan": self._plan_id})

    async def _send_and_wait(self, slot: Slot) -> CommandAck | None:
        deadline = self.rec.deadlines[slot.cmd_id]
        if now_ms() < deadline:
            step = self.rec.step(slot.index)
            tp = self.rec.plan.traceparent
            await publish(self._d.js, step_command(step, slot, deadline, self._epoch, tp))
        return await self._d.acks.wait(slot, deadline)

    async def _mark(
        self,
        slot: Slot,
        status: StepStatus,
        event: EventKind,
        detail: str = "",
        deadlines: dict[str, int] | None = None,
    ) -> None:
        rec = self.rec.with_step(slot.index, status)
        changes = {"deadlines": {**rec.deadlines, **deadlines}} if deadlines else {}
        await self._save(rec.log(self._event(event, slot.index, slot, detail), **changes))

    async def _save(self, rec: PlanRecord) -> None:
        self._rev = await self._d.store.save(rec, self._rev)
        self._rec = rec
        self._d.on_saved(rec, self._rev)

    def _event(
        self, event: EventKind, index: int | None = None, slot: Slot | None = None, detail: str = ""
    ) -> StepEvent:
        return StepEvent(
            event=event,
            index=index,
            replica=self._d.replica,
            epoch=self._epoch,
            cmd_id=slot.cmd_id if slot else None,
            detail=detail,
        )


def _why(ack: CommandAck | None) -> str:
    if ack is None:
        return "deadline passed without an ack"
    return f"refused by the edge: {ack.reason or 'no reason given'}"


def _outcome(rec: PlanRecord) -> PlanStatus:
    if all(step.status == "acked" for step in rec.plan.steps):
        return "succeeded"
    if any(event.event == "undo_failed" for event in rec.history):
        return "failed"
    return "compensated"
