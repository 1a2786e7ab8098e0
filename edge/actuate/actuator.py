"""The actuator: turns a rule firing or an outside command into bytes on the device's topic.

Two doors. `fire()` is the reflex's: the rule set is the policy, so it sends at once
(a `gw.*` action, which no device understands, goes to `local` instead: the gateway's own
actions, carried out off the hot path). It packs the command's wire fields as it builds
them and returns them as a `ReflexCommand`: the `Command` model and the `actions` row
are made by `record()`, which the reflex calls once the bytes have left. `execute()` is everyone else's (downlink,
sessions, the twin): the command goes through the `ActuationGuard` first; a refusal is
recorded, counted, reported up as a failed `CommandAck` (so a cloud saga fails fast
instead of waiting out its deadline), and raised. Every command sent or refused lands in
the `actions` table through the audit writer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from edge.actuate.guard import ActuationGuard
from edge.errors import GuardRefused
from edge.ingest.ids import new_id
from edge.ingest.ports import CommandSink, UplinkSink
from edge.ops.metrics import EdgeMetrics
from edge.reflex.trigger import Firing
from edge.store.records import ActionRecord
from edge.store.writer import AuditWriter
from shared import actions
from shared.codec import encode, encode_json, pack, pack_json
from shared.messages import SCHEMA_VERSION, Command, CommandAck, now_ms

log = logging.getLogger(__name__)

Format = Literal["msgpack", "json"]


@dataclass(frozen=True, slots=True)
class ReflexCommand:
    """A rule's or model's command as `fire()` sent it: its wire form, `Command`'s fields
    in their order plus `kind`, exactly what `encode(cmd)` would have packed."""

    wire: dict[str, Any]
    origin: str
    unrecorded: bool
    """Sent, and its `actions` row not written yet (`Actuator.record` writes it)."""

    def command(self) -> Command:
        # Every field given, so no default factory runs (pydantic would call
        # `inspect.signature` for each); `kind` is not a field and is ignored.
        return Command.model_construct(**self.wire)


class Actuator:
    def __init__(
        self,
        gateway: str,
        sink: CommandSink,
        guard: ActuationGuard,
        writer: AuditWriter,
        metrics: EdgeMetrics,
        *,
        uplink: UplinkSink | None = None,
        fmt: Format = "msgpack",
    ) -> None:
        self.gateway = gateway
        self.guard = guard
        self._sink = sink
        self._writer = writer
        self._metrics = metrics
        self._uplink = uplink
        self._encode = encode_json if fmt == "json" else encode
        self._pack = pack_json if fmt == "json" else pack
        # Where a reflex-fired `gw.*` command goes (`GatewayActions.submit`); must not wait.
        self.local: Callable[[Command, str], None] | None = None

    async def fire(self, firing: Firing, *, traceparent: str) -> ReflexCommand:
        """Send a rule's or model's command now (no guard: the rules are the policy).

        No model is built before the bytes leave: every field comes from validated config
        or our own clock, and a `Command` plus its dump costs the hot path ~10 µs."""
        issued = now_ms()
        wire: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "traceparent": traceparent,
            "cmd_id": new_id(),
            "device": firing.device,
            "gw": self.gateway,
            "action": firing.action,
            "params": dict(firing.params),
            "issued_ms": issued,
            "deadline_ms": issued + firing.deadline_ms,
            "epoch": 0,
            "source": f"{firing.source}:{firing.name}@{firing.version}",
            "session": None,
            "kind": Command.kind,
        }
        origin = firing.source
        if self.local is not None and actions.is_gateway(firing.action):
            self.local(Command.model_construct(**wire), origin)
            return ReflexCommand(wire, origin, unrecorded=False)
        try:
            await self._sink.send(firing.device, self._pack(wire))
        except Exception as exc:  # a broker hiccup must not take the loop down
            self._failed(Command.model_construct(**wire), origin, exc)
            return ReflexCommand(wire, origin, unrecorded=False)
        self._metrics.commands[(origin, "sent")] += 1
        return ReflexCommand(wire, origin, unrecorded=True)

    def record(self, fired: ReflexCommand) -> Command:
        """The `Command` of a `fire()`, its `actions` row written if it still lacked one."""
        cmd = fired.command()
        if fired.unrecorded:
            self._writer.action(ActionRecord(cmd, "sent", fired.origin))
        return cmd

    async def execute(self, cmd: Command, origin: str) -> None:
        """Guard, then send. Raises `GuardRefused` (already recorded and reported)."""
        self.admit(cmd, origin)
        if cmd.gw is None:
            cmd = cmd.model_copy(update={"gw": self.gateway})
        await self._send(cmd, origin)

    def admit(self, cmd: Command, origin: str) -> None:
        """The guard's half of `execute`, for commands the gateway carries out itself:
        raises `GuardRefused` (recorded, counted and acked up as failed)."""
        try:
            if self.guard.check(cmd, now_ms()) and cmd.session is not None:
                self._writer.fence(cmd.session, cmd.epoch)
        except GuardRefused as exc:
            self._refused(cmd, origin, exc)
            raise

    async def _send(self, cmd: Command, origin: str) -> None:
        try:
            await self._sink.send(cmd.device, self._encode(cmd))
        except Exception as exc:  # a broker hiccup must not take the loop down
            self._failed(cmd, origin, exc)
            return
        self._metrics.commands[(origin, "sent")] += 1
        self._writer.action(ActionRecord(cmd, "sent", origin))

    def _failed(self, cmd: Command, origin: str, exc: Exception) -> None:
        self._metrics.commands[(origin, "failed")] += 1
        self._metrics.errors["publish"] += 1
        self._writer.action(ActionRecord(cmd, "failed", origin, repr(exc)))
        log.error("command %s to %s not sent: %r", cmd.action, cmd.device, exc)

    def _refused(self, cmd: Command, origin: str, exc: GuardRefused) -> None:
        self._metrics.commands[(origin, "refused")] += 1
        self._metrics.refused[exc.reason] += 1
        self._writer.action(ActionRecord(cmd, "refused", origin, exc.reason))
        log.warning(
            "command refused: %s",
            exc,
            extra={"cmd_id": cmd.cmd_id, "device": cmd.device, "reason": exc.reason},
        )
        if self._uplink is not None:
            ack = CommandAck(
                cmd_id=cmd.cmd_id,
                device=cmd.device,
                ok=False,
                reason=f"guard:{exc.reason}",
                epoch=cmd.epoch,
                traceparent=cmd.traceparent,
            )
            self._uplink.submit("ack", cmd.device, cmd.cmd_id, encode(ack))
