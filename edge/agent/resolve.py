"""Which device a tool call is about: the one named, the session's focus, or the only one."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

from edge.agent.state import EdgeState
from shared.agent import ToolContext, ToolError

FOCUS = "device"  # the working-memory key of the device the conversation is about


async def resolve_device(
    state: EdgeState, args: Mapping[str, JsonValue], ctx: ToolContext, *, known_only: bool = True
) -> str:
    """The device to use; remembered as the session's focus. `ToolError` saying which
    devices exist when the call names none and the conversation has none."""
    named = args.get("device")
    if isinstance(named, str) and named:
        device = await _known(state, named) if known_only else named
    else:
        device = await _default(state, ctx)
    ctx.memory[FOCUS] = device
    return device


async def _known(state: EdgeState, named: str) -> str:
    known = await state.devices()
    if named in known or not known:
        return named
    # Users type "Pump1" for "pump1": accept a case-insensitive match.
    match = next((d for d in known if d.lower() == named.lower()), None)
    if match is None:
        raise ToolError(f"no data for device {named!r}; known devices: {', '.join(known)}")
    return match


async def _default(state: EdgeState, ctx: ToolContext) -> str:
    focus = ctx.memory.get(FOCUS)
    if isinstance(focus, str) and focus:
        return focus
    known = await state.devices()
    if len(known) == 1:
        return known[0]
    listing = ", ".join(known) if known else "none has sent data yet"
    raise ToolError(f"which device? known devices: {listing}")
