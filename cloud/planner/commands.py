"""Saga step → `Command` on the hub DOWNLINK stream, and the cmd_id scheme that routes acks.

    cmd_id   <plan_id>-<index>       a step
             <plan_id>-<index>-u     its compensation ("undo")
    subject  downlink.<gw>.cmd.<device>
    headers  Nats-Msg-Id = cmd_id, traceparent

The cmd_id alone tells which plan and step a `CommandAck` answers, so any replica can
file an ack for a saga another replica runs. `Nats-Msg-Id` = cmd_id makes a re-send
after a takeover a duplicate the hub drops (inside its window) and the edge dedupes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nats.js import JetStreamContext

from shared import codec, subjects, trace
from shared.messages import Command, PlanStep

_PLAN_ID = re.compile(r"^[0-9a-f]{32}$")
UNDO = "u"


@dataclass(frozen=True, slots=True)
class Slot:
    """One command of a saga: step `index`, forward or undo."""

    plan_id: str
    index: int
    undo: bool = False

    @property
    def cmd_id(self) -> str:
        return f"{self.plan_id}-{self.index}" + (f"-{UNDO}" if self.undo else "")

    @property
    def ack_key(self) -> str:
        """Where the ack is filed in the coordination bucket."""
        return f"ack.{self.plan_id}.{self.index}" + (f"-{UNDO}" if self.undo else "")

    @property
    def source(self) -> str:
        return f"plan:{self.plan_id}:{self.index}" + (":undo" if self.undo else "")


def parse_cmd_id(cmd_id: str) -> Slot | None:
    """The slot a plan's cmd_id names; None for commands the planner did not send."""
    parts = cmd_id.split("-")
    undo = len(parts) == 3 and parts[2] == UNDO
    if len(parts) not in (2, 3) or (len(parts) == 3 and not undo):
        return None
    plan_id, index = parts[0], parts[1]
    if not _PLAN_ID.match(plan_id) or not index.isdigit() or len(index) > 3:
        return None
    return Slot(plan_id, int(index), undo)


def step_command(step: PlanStep, slot: Slot, deadline_ms: int, epoch: int, tp: str) -> Command:
    """The command for `slot`: the step's action, or its compensation's when undoing."""
    if slot.undo:
        if step.compensation is None:
            raise ValueError(f"step {step.index} has no compensation")
        action, params = step.compensation.action, step.compensation.params
    else:
        action, params = step.action, step.params
    return Command(
        cmd_id=slot.cmd_id,
        device=step.device,
        gw=step.gw,
        action=action,
        params=dict(params),
        deadline_ms=deadline_ms,
        epoch=epoch,
        source=slot.source,
        traceparent=trace.child_of(tp),
    )


async def publish(js: JetStreamContext, command: Command) -> None:
    """Store `command` in DOWNLINK (the gateway's durable consumer delivers it)."""
    gw = command.gw or ""
    await js.publish(
        subjects.downlink(gw, "cmd", command.device),
        codec.encode(command),
        stream=subjects.DOWNLINK_STREAM,
        headers={"Nats-Msg-Id": command.cmd_id, trace.HEADER: command.traceparent},
    )
