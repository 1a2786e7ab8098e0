"""The actions the gateway carries out itself: `gw.ticket`, `gw.ticket_cancel`, `gw.diagnose`.

    Command gw.* ─▶ same cmd_id done already? ─▶ its ack again, nothing redone
                 ─▶ guard (allow-list, params, deadline, fencing): refused → failed ack
                 ─▶ carry out on the gateway's SQLite
                 ─▶ CommandAck(ok, result) ─▶ uplink.<gw>.ack.<dev> ─▶ hub fleet.<gw>.ack.<dev>

The ack takes the path a device's own ack takes to the hub (the forwarder keys both by
`cmd_id`, so the hub stores one per command), and the cloud planner files it under the
plan step it answers. A command past its `deadline_ms` is refused by the guard with
`ok=false`: the saga that sent it has stopped waiting, so carrying it out now would be
an effect nobody accounts for.

Idempotent by `cmd_id` (a downlink redelivery answers the same) and, across a restart,
by ticket `ref` (opening a ticket twice keeps the first; cancelling twice is a no-op), so
a compensation can always run.

A rule or model may fire a `gw.*` action too (a ticket when vibration runs high): the
reflex hands it to `submit()`, which never waits, and `serve()` carries it out off the
hot path, since a ticket is a disk write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import JsonValue

from edge.actuate.actuator import Actuator
from edge.actuate.diagnose import diagnose
from edge.errors import GuardRefused, StoreError
from edge.ingest.ports import UplinkSink
from edge.store import ActionRecord, AsyncStore, AuditWriter, EdgeStore, TicketRecord
from shared import actions
from shared.codec import encode
from shared.compat import timeout
from shared.messages import Command, CommandAck, now_ms
from shared.trace import child_of

log = logging.getLogger(__name__)

# Answers kept for redeliveries: far more than the commands in flight to one gateway.
REMEMBERED = 256
# Reflex-fired gw.* commands waiting for `serve()`; past this a firing is dropped and
# counted (rules have cooldowns, so only a misconfigured rule set gets near it).
MAX_QUEUED = 1024
# On stop, queued actions get this long (each is one SQLite transaction).
DRAIN_TIMEOUT_S = 5.0

Result = dict[str, JsonValue]


class ActionFailed(Exception):
    """The gateway could not carry the action out; the reason goes in the failed ack."""


class GatewayActions:
    def __init__(
        self,
        gateway: str,
        store: AsyncStore,
        writer: AuditWriter,
        actuator: Actuator,
        *,
        uplink: UplinkSink | None,
    ) -> None:
        self._gateway = gateway
        self._store = store
        self._writer = writer
        self._actuator = actuator
        self._uplink = uplink
        self._done: OrderedDict[str, CommandAck] = OrderedDict()
        self._queue: asyncio.Queue[tuple[Command, str]] = asyncio.Queue(MAX_QUEUED)
        self.dropped = 0
        self._handlers: dict[str, Callable[[Command], Awaitable[Result]]] = {
            actions.TICKET: self._ticket,
            actions.TICKET_CANCEL: self._cancel,
            actions.DIAGNOSE: self._diagnose,
        }

    async def run(self, cmd: Command, origin: str) -> CommandAck:
        """Carry `cmd` out and ack it up; `GuardRefused` (already acked) if refused."""
        answered = self._done.get(cmd.cmd_id)
        if answered is not None:
            self._submit(answered)  # the hub's dedupe keeps one; a lost one is replaced
            return answered
        self._actuator.admit(cmd, origin)
        try:
            ack = self._ack(cmd, result=await self._carry_out(cmd))
        except ActionFailed as exc:
            ack = self._ack(cmd, reason=str(exc))
        self._writer.action(ActionRecord(cmd, "done" if ack.ok else "failed", origin, ack.reason))
        self._remember(ack)
        self._submit(ack)
        log.info(
            "%s for %s %s",
            cmd.action,
            cmd.device,
            "done" if ack.ok else f"failed: {ack.reason}",
            extra={"cmd_id": cmd.cmd_id, "device": cmd.device, "action": cmd.action},
        )
        return ack

    def submit(self, cmd: Command, origin: str) -> None:
        """Queue a reflex-fired command for `serve()`; never waits."""
        try:
            self._queue.put_nowait((cmd, origin))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("gateway action queue full; %s for %s dropped", cmd.action, cmd.device)

    async def serve(self) -> None:
        """Carry out what `submit()` queued, until cancelled."""
        while True:
            cmd, origin = await self._queue.get()
            try:
                await self._run_queued(cmd, origin)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until `serve()` carried out everything queued (stop the reflex first)."""
        try:
            async with timeout(DRAIN_TIMEOUT_S):
                await self._queue.join()
        except asyncio.TimeoutError:
            log.warning("%d gateway actions not carried out before stopping", self._queue.qsize())

    async def _run_queued(self, cmd: Command, origin: str) -> None:
        try:
            await self.run(cmd, origin)
        except GuardRefused:
            pass  # recorded, counted and acked up as failed by the actuator
        except Exception:  # the next one must still be carried out
            log.exception("%s for %s not carried out", cmd.action, cmd.device)

    async def _carry_out(self, cmd: Command) -> Result:
        handler = self._handlers.get(cmd.action)
        if handler is None:
            raise ActionFailed(f"{cmd.action!r} is not an action this gateway carries out")
        # Strict: the gateway implements these actions, so it knows every param.
        why = actions.problem(cmd.action, cmd.params)
        if why is not None:
            raise ActionFailed(why)
        try:
            return await handler(cmd)
        except StoreError as exc:
            raise ActionFailed(f"gateway store: {exc}") from exc

    # -- the actions -------------------------------------------------------------------

    async def _ticket(self, cmd: Command) -> Result:
        ticket = TicketRecord(
            ref=str(cmd.params["ref"]),
            device=cmd.device,
            kind=str(cmd.params["kind"]),
            reason=str(cmd.params.get("reason") or ""),
            opened_ms=now_ms(),
            cmd_id=cmd.cmd_id,
        )
        row = await self._store.call(EdgeStore.open_ticket, ticket)
        if row["device"] != cmd.device:
            raise ActionFailed(f"ticket {ticket.ref} already exists for {row['device']}")
        return _ticket_result(row)

    async def _cancel(self, cmd: Command) -> Result:
        ref = str(cmd.params["ref"])
        row = await self._store.call(EdgeStore.cancel_ticket, ref, cmd.cmd_id, now_ms())
        if row is None:
            # Nothing to withdraw is what a compensation wants: success, said plainly.
            return {"ticket": ref, "status": "not_found"}
        return _ticket_result(row)

    async def _diagnose(self, cmd: Command) -> Result:
        await self._writer.flush()  # the newest readings and decisions, on disk first
        return await self._store.call(diagnose, cmd.device, now_ms())

    # -- answers -----------------------------------------------------------------------

    def _ack(self, cmd: Command, *, result: Result | None = None, reason: str = "") -> CommandAck:
        return CommandAck(
            cmd_id=cmd.cmd_id,
            device=cmd.device,
            ok=result is not None,
            reason=reason or None,
            result=result,
            epoch=cmd.epoch,
            traceparent=child_of(cmd.traceparent),
        )

    def _remember(self, ack: CommandAck) -> None:
        self._done[ack.cmd_id] = ack
        if len(self._done) > REMEMBERED:
            self._done.popitem(last=False)

    def _submit(self, ack: CommandAck) -> None:
        if self._uplink is None:
            log.warning("no uplink: the ack of %s stays on the gateway", ack.cmd_id)
            return
        self._uplink.submit("ack", ack.device, ack.cmd_id, encode(ack), traceparent=ack.traceparent)


def _ticket_result(row: dict[str, Any]) -> Result:
    return {
        "ticket": row["ref"],
        "kind": row["kind"],
        "status": row["status"],
        "opened_ms": row["opened_ms"],
        "closed_ms": row["closed_ms"],
    }
