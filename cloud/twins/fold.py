"""Apply a batch of facts to one twin: a pure function, so every rule is testable alone.

The result does not depend on the order the facts arrive in: sequences are a set
(`SeqWindow`), the newest reading, report and status are chosen by HLC, and `online`
is derived from the newest of them. A redelivered or replayed fact is a duplicate and
changes nothing, which is what lets ingest ack only after the effect is stored and
still apply everything exactly once: a reading by its sequence, a report or a status by
its HLC, which is the same on every copy (`cloud.ingest.facts`, "Order").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cloud.ingest.facts import Fact
from cloud.twins.record import TwinRecord
from shared import hlc
from shared.messages import Reading, ReportedState


@dataclass(frozen=True, slots=True)
class FoldContext:
    now_ms: int
    silent_after_ms: int
    # The ingest consumer's ack floor: FLEET messages up to this stream sequence are
    # settled, so a reading gap they could have filled is permanent (`SeqWindow.settle`).
    settled_seq: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    record: TwinRecord
    changed: bool
    applied: tuple[Fact, ...]
    duplicates: tuple[Fact, ...]
    # Time from the desired change to the report that matched it, when one did now.
    convergence_ms: int | None = None
    came_online: bool = False
    # Reading gaps given up on before they were settled (`SeqWindow.settle`): each may
    # hide readings that will be taken for duplicates. Zero unless the ack floor is stuck.
    gaps_forced: int = 0


def fold(record: TwinRecord | None, facts: Iterable[Fact], ctx: FoldContext) -> Outcome:
    facts = tuple(facts)
    before = record or TwinRecord.new(facts[0].gw, facts[0].device, ctx.now_ms)
    current = before
    applied: list[Fact] = []
    duplicates: list[Fact] = []
    for fact in facts:
        update = _apply(current, fact)
        if update is None:
            duplicates.append(fact)
            continue
        applied.append(fact)
        current = current.model_copy(update=update)
    if not applied:
        return Outcome(before, record is None, (), tuple(duplicates))
    window, forced = current.window.settle(ctx.settled_seq)
    current = current.model_copy(update=current.with_window(window))
    current, convergence_ms = _converge(current, ctx)
    current, came_online = _liveness(before, current, ctx, is_new=record is None)
    current = current.model_copy(update={"updated_ms": ctx.now_ms})
    return Outcome(
        current, True, tuple(applied), tuple(duplicates), convergence_ms, came_online, forced
    )


def _apply(rec: TwinRecord, fact: Fact) -> dict[str, Any] | None:
    """The fields `fact` changes, or None when it is a duplicate or stale."""
    body = fact.body
    if isinstance(body, Reading):
        return _reading(rec, fact, body)
    if isinstance(body, ReportedState):
        if fact.hlc <= rec.reported_hlc:
            return None
        return {
            "reported": dict(body.state),
            "reported_version": body.applied_version,
            "reported_hlc": fact.hlc,
        }
    if isinstance(body, bool):
        if fact.hlc <= rec.status_hlc:
            return None
        return {"status_hlc": fact.hlc, "status_online": body}
    return None


def _reading(rec: TwinRecord, fact: Fact, reading: Reading) -> dict[str, Any] | None:
    window = rec.window
    if window.seen(reading.seq):
        return None
    update = rec.with_window(window.mark(reading.seq, fact.stream_seq))
    update["readings"] = rec.readings + 1
    if fact.hlc > rec.last_hlc:
        update |= {
            "last_seq": reading.seq,
            "last_hlc": fact.hlc,
            "last_ts_ms": reading.ts_ms,
            "last_metrics": dict(reading.metrics),
        }
    return update


def _converge(rec: TwinRecord, ctx: FoldContext) -> tuple[TwinRecord, int | None]:
    target = rec.desired_version
    if target == 0 or rec.reported_version < target or rec.converged_version >= target:
        return rec, None
    # Wall-clock milliseconds on purpose: the desired change and the report may be
    # handled by different replicas, so a process-local monotonic clock cannot span them.
    took = max(0, ctx.now_ms - rec.desired_ms)
    return rec.model_copy(update={"converged_version": target, "convergence_ms": took}), took


def _liveness(
    before: TwinRecord, rec: TwinRecord, ctx: FoldContext, *, is_new: bool
) -> tuple[TwinRecord, bool]:
    activity = max(rec.last_hlc, rec.reported_hlc)
    seen_ms = max(rec.last_seen_ms, hlc.unpack(activity)[0] if activity else 0)
    if rec.status_hlc > activity and rec.status_online:
        seen_ms = max(seen_ms, hlc.unpack(rec.status_hlc)[0])
    online = is_online(rec, seen_ms, ctx)
    came_online = online and not before.online and not is_new
    update: dict[str, Any] = {"last_seen_ms": seen_ms, "online": online}
    if came_online and rec.drift:
        # Back from an outage with desired state it never applied: make the reconcile
        # loop send it now instead of waiting out the resend backoff.
        update["sent_ms"] = 0
    return rec.model_copy(update=update), came_online


def is_online(rec: TwinRecord, seen_ms: int, ctx: FoldContext) -> bool:
    """Online unless the newest word from it is `offline`, or it has been silent too long."""
    if rec.status_hlc > max(rec.last_hlc, rec.reported_hlc):
        return rec.status_online
    return seen_ms >= ctx.now_ms - ctx.silent_after_ms
