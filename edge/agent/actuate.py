"""The agent's `actuate` tool: a `Command` fenced by the session's epoch, through the guard.

The command carries `session` and `epoch`, so the edge's `ActuationGuard` refuses it
when a newer owner of the session has acted (`stale_epoch`), an action the rules do not
use and config does not allow (`not_allowed`), params outside `[actuate.bounds]`
(`out_of_bounds`), or a passed deadline (`expired`): the same checks as any command from
outside the rules, recorded in the `actions` table either way.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue, ValidationError

from edge.agent.resolve import resolve_device
from edge.agent.state import EdgeState
from edge.errors import GuardRefused
from shared.agent import ToolContext, ToolError
from shared.messages import Command, now_ms

# A device that has not taken an agent's command within this is not to get it later.
ACTUATE_DEADLINE_MS = 5_000


async def actuate(state: EdgeState, args: Mapping[str, JsonValue], ctx: ToolContext) -> JsonValue:
    if not state.can_actuate:
        raise ToolError(
            "actuation is unavailable here (no connection to the gateway's broker)",
            retryable=True,
        )
    device = await resolve_device(state, args, ctx, known_only=False)
    cmd = _command(state.gateway, device, args, ctx)
    try:
        await state.execute(cmd)
    except GuardRefused as exc:
        raise ToolError(
            f"refused by the safety guard: {exc.detail}",
            details={"reason": exc.reason, "cmd_id": cmd.cmd_id, "epoch": cmd.epoch},
        ) from exc
    return {
        "sent": True, "cmd_id": cmd.cmd_id, "device": device, "action": cmd.action,
        "params": dict(cmd.params), "epoch": cmd.epoch,
    }  # fmt: skip


def _command(gateway: str, device: str, args: Mapping[str, JsonValue], ctx: ToolContext) -> Command:
    params = args.get("params") or {}
    issued = now_ms()
    try:
        # Validated like any command from the network: the model wrote these arguments.
        return Command.model_validate({
            "device": device, "gw": gateway, "action": args["action"], "params": params,
            "issued_ms": issued, "deadline_ms": issued + ACTUATE_DEADLINE_MS,
            "epoch": ctx.epoch, "session": ctx.session, "source": f"session:{ctx.session}",
        })  # fmt: skip
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ToolError(f"not a valid command ({where}: {first['msg']})") from exc
