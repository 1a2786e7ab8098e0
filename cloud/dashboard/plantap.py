"""`PlanTap`: the planner's plan records → spans of the plan and each saga step.

A plan's `traceparent` is a child of the trigger's (the gateway's decision, forwarded
with its header), so its spans land in the same trace as the reading that started it.
The record's history gives each step's times: `sent` → `acked` / `failed` / `skipped`,
and `undo_sent` → `compensated` / `undo_failed` for the compensation. Commands sent for
a step are registered in `Commands`, so the device's ack adds its own span.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cloud.dashboard.fleettap import Commands, Issued
from cloud.dashboard.flow import Flow
from cloud.dashboard.spans import Ids, Span, derived_id
from cloud.dashboard.traces import Pick, TraceStore

if TYPE_CHECKING:
    from cloud.planner.records import PlanRecord, StepEvent
    from shared.messages import Plan

MAX_PLANS: Final = 1000
_ENDS: Final = {"acked", "failed", "skipped"}
_UNDO_ENDS: Final = {"compensated", "undo_failed"}


@dataclass(frozen=True, slots=True)
class _Window:
    start_ms: float
    end_ms: float | None
    outcome: str


class PlanTap:
    def __init__(self, store: TraceStore, flow: Flow, commands: Commands) -> None:
        self._store = store
        self._flow = flow
        self._commands = commands
        self._picked: OrderedDict[str, set[int]] = OrderedDict()

    def on_record(self, record: PlanRecord) -> list[Span]:
        """The spans of this plan now (ended steps are final; the store replaces older)."""
        plan = record.plan
        self._flow.on_plan(plan.plan_id, plan.trigger)
        ids = Ids.of(plan.traceparent)
        if ids is None:
            return []
        spans = [self._plan_span(record, ids)]
        for index, step in enumerate(plan.steps):
            spans += self._step_spans(record, ids, index, step.action, f"{step.gw}/{step.device}")
        self._store.add(spans)
        return spans

    def _plan_span(self, record: PlanRecord, ids: Ids) -> Span:
        plan = record.plan
        ended = next((e.ts_ms for e in record.history if e.event == "finished"), None)
        return Span(ids.trace_id, ids.span_id, None, f"plan {plan.trigger} by {plan.planner}",
                    "cloud", plan.created_ms, ended or record.updated_ms,
                    {"plan_id": plan.plan_id, "status": plan.status, "reason": plan.reason[:200],
                     "ended": ended is not None})  # fmt: skip

    def _step_spans(
        self, record: PlanRecord, ids: Ids, index: int, action: str, where: str
    ) -> list[Span]:
        history = [e for e in record.history if e.index == index]
        spans: list[Span] = []
        forward = _window(history, "sent", _ENDS)
        if forward is not None:
            span_id = derived_id(ids.span_id, f"step-{index}")
            self._sent(history, "sent", ids, span_id, action)
            spans.append(self._span(ids, span_id, f"step {index} {action} {where}", forward))
            self._pick(record.plan, index, action, where, ids, forward)
        undo = _window(history, "undo_sent", _UNDO_ENDS)
        if undo is not None:
            span_id = derived_id(ids.span_id, f"undo-{index}")
            self._sent(history, "undo_sent", ids, span_id, f"undo {action}")
            spans.append(self._span(ids, span_id, f"undo step {index} {where}", undo))
        return spans

    def _span(self, ids: Ids, span_id: str, name: str, window: _Window) -> Span:
        end = window.end_ms if window.end_ms is not None else window.start_ms
        return Span(ids.trace_id, span_id, ids.span_id, f"{name} → {window.outcome}", "edge",
                    window.start_ms, end, {"outcome": window.outcome,
                                           "ended": window.end_ms is not None})  # fmt: skip

    def _sent(
        self, history: list[StepEvent], event: str, ids: Ids, span_id: str, label: str
    ) -> None:
        for item in history:
            if item.event == event and item.cmd_id:
                self._commands.put(item.cmd_id, Issued(item.ts_ms, ids.trace_id, span_id, label))

    def _pick(
        self, plan: Plan, index: int, action: str, where: str, ids: Ids, window: _Window
    ) -> None:
        picked = self._picked.setdefault(plan.plan_id, set())
        self._picked.move_to_end(plan.plan_id)
        while len(self._picked) > MAX_PLANS:
            self._picked.popitem(last=False)
        if index not in picked:
            picked.add(index)
            label = f"plan {plan.trigger}: step {index} {action} on {where}"
            self._store.pick(Pick("plan_step", ids.trace_id, label, window.start_ms))


def _window(history: list[StepEvent], start: str, ends: set[str]) -> _Window | None:
    began = next((e for e in history if e.event == start), None)
    if began is None:
        return None
    ended = next((e for e in history if e.event in ends and e.ts_ms >= began.ts_ms), None)
    if ended is None:
        return _Window(began.ts_ms, None, "waiting for ack")
    outcome = ended.event + (f": {ended.detail}" if ended.detail else "")
    return _Window(began.ts_ms, ended.ts_ms, outcome)
