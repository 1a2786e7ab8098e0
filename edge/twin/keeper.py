"""The gateway's half of each device twin: apply desired state, report only what the device took.

Desired state speaks the action vocabulary (`shared.actions`): each key is
`"<action>.<param>"`, e.g. ``{"fan.on": true, "set_load.load": 0.5}``, and the keys of
one action become one command (`fan {"on": true}`, `set_load {"load": 0.5}`).

    apply(desired)
      not newer than applied   re-report the applied version (a cloud that missed it converges)
      older than one sent      nothing: a late redelivery must never follow a newer version
                               to the device (the newest sent is on disk, so this holds
                               across a restart); the one in flight: it is answering
      otherwise                group the keys into commands; a bad key or a command the guard
                               refuses refuses the whole version before anything is sent;
                               record it as desired, send the commands, wait for their acks
    on_ack(ack)                every device ack the daemon hears
      ok, last one outstanding persist the applied version (synchronous=FULL), report it
      not ok                   refuse the version: the device said why
    deadline passes            refuse the version: the device did not answer

A refusal keeps the applied version and its state, and reports them again with
`refused_version` and `reason` (a `ReportedState`), plus a `twin_refused` GatewayEvent:
the cloud sees no false convergence, and its reconcile loop re-sends with backoff. Actions
of a refused version that the device did take are not rolled back; the version as a whole
is simply not applied. A newer version supersedes one in flight (the old one's acks are
ignored).

The applied version is written only after the device's ack: a crash in between means the
cloud re-sends and the (idempotent) commands go out again, never that the gateway reports
a state the device did not take.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.actuate.actuator import Actuator
from edge.errors import GuardRefused
from edge.ingest.ports import UplinkSink
from edge.store.records import TwinRecord
from edge.store.runner import AsyncStore
from shared import actions
from shared.codec import encode
from shared.hlc import HybridLogicalClock
from shared.messages import Command, CommandAck, DesiredState, GatewayEvent, ReportedState, now_ms
from shared.trace import child_of

log = logging.getLogger(__name__)

# How long a device has to take a desired-state command before it is stale.
TWIN_DEADLINE_MS = 10_000
# An ack sent just before the deadline is still on its way through the broker.
ACK_GRACE_MS = 1_000
ORIGIN = "twin"
REFUSED_EVENT = "twin_refused"


@dataclass(slots=True)
class _InFlight:
    """A desired version whose commands went out and whose acks are awaited."""

    desired: DesiredState
    waiting: set[str]
    timer: asyncio.TimerHandle | None = field(default=None)


class TwinKeeper:
    def __init__(
        self,
        gateway: str,
        store: AsyncStore,
        actuator: Actuator,
        clock: HybridLogicalClock,
        *,
        uplink: UplinkSink | None = None,
        twins: Mapping[str, TwinRecord] | None = None,
    ) -> None:
        self._gateway = gateway
        self._store = store
        self._actuator = actuator
        self._clock = clock
        self._uplink = uplink
        self._twins: dict[str, TwinRecord] = dict(twins or {})
        self._in_flight: dict[str, _InFlight] = {}  # by device
        self._by_cmd: dict[str, str] = {}  # cmd_id -> device

    def get(self, device: str) -> TwinRecord | None:
        return self._twins.get(device)

    def in_flight(self, device: str) -> int | None:
        """The desired version sent to `device` and not yet acknowledged, if any."""
        flight = self._in_flight.get(device)
        return flight.desired.version if flight is not None else None

    async def apply(self, desired: DesiredState) -> bool:
        """Start applying `desired`; True when its commands went out (or none were needed)."""
        current = self._twins.get(desired.device)
        if current is not None and desired.version <= current.applied_version:
            log.info(
                "desired v%d of %s not newer than applied v%d",
                desired.version, desired.device, current.applied_version,
                extra={"device": desired.device},
            )  # fmt: skip
            self._report(current, desired.traceparent)
            return False
        if self._stale(desired, current):
            return False
        try:
            commands = self._commands(desired)
        except (ValueError, GuardRefused) as exc:
            self._refuse(desired, f"refused by the gateway: {exc}")
            return False
        self._supersede(desired.device)
        wanted = self._record(desired, applied=False)
        await self._store.save_twin(wanted)
        self._twins[desired.device] = wanted
        return await self._send(desired, commands)

    def _stale(self, desired: DesiredState, current: TwinRecord | None) -> bool:
        """Older than a version already sent (a late redelivery), or the one in flight."""
        flying = self.in_flight(desired.device)
        if flying is not None and desired.version <= flying:
            return True
        # The record keeps the newest version sent, across a restart that forgot the flight.
        if current is not None and desired.version < current.desired_version:
            log.info(
                "desired v%d of %s older than v%d already sent; not sent",
                desired.version, desired.device, current.desired_version,
                extra={"device": desired.device},
            )  # fmt: skip
            return True
        return False

    async def on_ack(self, ack: CommandAck) -> bool:
        """Account a device ack; False when it answers no twin command in flight."""
        device = self._by_cmd.pop(ack.cmd_id, None)
        flight = self._in_flight.get(device) if device is not None else None
        if flight is None or ack.device != flight.desired.device:
            return False
        flight.waiting.discard(ack.cmd_id)
        if not ack.ok:
            self._end(flight)
            self._refuse(flight.desired, f"refused by the device: {ack.reason or 'no reason'}")
        elif not flight.waiting:
            self._end(flight)
            await self._commit(flight.desired)
        return True

    async def aclose(self) -> None:
        """Forget what is in flight (the cloud re-sends what never converged). Safe twice."""
        for flight in list(self._in_flight.values()):
            self._end(flight)

    # -- sending -----------------------------------------------------------------------

    def _commands(self, desired: DesiredState) -> list[Command]:
        """One command per action; `ValueError`/`GuardRefused` if any would be refused."""
        issued = now_ms()
        commands = [
            Command(
                device=desired.device,
                gw=self._gateway,
                action=action,
                params=params,
                issued_ms=issued,
                deadline_ms=issued + TWIN_DEADLINE_MS,
                epoch=desired.epoch,
                source=f"twin:v{desired.version}",
                traceparent=child_of(desired.traceparent),
            )
            for action, params in actions.group_desired(desired.state).items()
        ]
        for cmd in commands:  # all or none: never half a version
            self._actuator.guard.check_params(cmd.action, cmd.params)
        return commands

    async def _send(self, desired: DesiredState, commands: list[Command]) -> bool:
        if not commands:
            await self._commit(desired)
            return True
        flight = _InFlight(desired, {cmd.cmd_id for cmd in commands})
        self._in_flight[desired.device] = flight
        self._by_cmd.update((cmd.cmd_id, desired.device) for cmd in commands)
        loop = asyncio.get_running_loop()
        flight.timer = loop.call_later(
            (TWIN_DEADLINE_MS + ACK_GRACE_MS) / 1000, self._expire, flight
        )
        try:
            for cmd in commands:
                await self._actuator.execute(cmd, origin=ORIGIN)
        except GuardRefused as exc:  # the deadline or fencing, between check and send
            self._end(flight)
            self._refuse(desired, f"refused by the gateway: {exc}")
            return False
        return True

    def _supersede(self, device: str) -> None:
        flight = self._in_flight.get(device)
        if flight is not None:
            log.info("desired v%d of %s superseded", flight.desired.version, device)
            self._end(flight)

    def _end(self, flight: _InFlight) -> None:
        if flight.timer is not None:
            flight.timer.cancel()
        for cmd_id in flight.waiting:
            self._by_cmd.pop(cmd_id, None)
        if self._in_flight.get(flight.desired.device) is flight:
            del self._in_flight[flight.desired.device]

    def _expire(self, flight: _InFlight) -> None:
        if self._in_flight.get(flight.desired.device) is not flight:
            return
        self._end(flight)
        waited = (TWIN_DEADLINE_MS + ACK_GRACE_MS) / 1000
        self._refuse(flight.desired, f"the device did not acknowledge within {waited:g} s")

    # -- outcomes ----------------------------------------------------------------------

    async def _commit(self, desired: DesiredState) -> None:
        record = self._record(desired, applied=True)
        await self._store.save_twin(record)
        current = self._twins.get(desired.device)
        if current is None or record.applied_version >= current.applied_version:
            self._twins[desired.device] = record
        self._report(record, desired.traceparent)

    def _refuse(self, desired: DesiredState, reason: str) -> None:
        log.warning(
            "desired v%d of %s not applied: %s", desired.version, desired.device, reason,
            extra={"device": desired.device, "version": desired.version, "reason": reason},
        )  # fmt: skip
        current = self._twins.get(desired.device) or self._record(desired, applied=False)
        self._report(current, desired.traceparent, refused=(desired.version, reason))
        self._event(current, desired, reason)

    def _record(self, desired: DesiredState, *, applied: bool) -> TwinRecord:
        """The twin with `desired` as the wanted state, applied or still the old one."""
        old = self._twins.get(desired.device)
        return TwinRecord(
            device=desired.device,
            desired_version=desired.version,
            desired=dict(desired.state),
            applied_version=desired.version if applied else (old.applied_version if old else 0),
            reported=dict(desired.state) if applied else (dict(old.reported) if old else {}),
            updated_ms=now_ms(),
        )

    def _report(
        self, record: TwinRecord, traceparent: str, refused: tuple[int, str] | None = None
    ) -> None:
        if self._uplink is None:
            return
        reported = ReportedState(
            device=record.device,
            gw=self._gateway,
            applied_version=record.applied_version,
            state=dict(record.reported),
            hlc=self._clock.now(),
            refused_version=refused[0] if refused else None,
            reason=refused[1][:512] if refused else None,
            traceparent=child_of(traceparent),
        )
        # A refusal re-reports the applied version: its own key, or the hub's dedupe
        # would drop it as the report it already has.
        key = (
            f"{record.applied_version}-refused-{refused[0]}" if refused else record.applied_version
        )
        self._uplink.submit(
            "twin", record.device, key, encode(reported), traceparent=reported.traceparent
        )

    def _event(self, record: TwinRecord, desired: DesiredState, reason: str) -> None:
        if self._uplink is None:
            return
        event = GatewayEvent(
            gw=self._gateway,
            device=desired.device,
            type=REFUSED_EVENT,
            data={
                "version": desired.version,
                "applied_version": record.applied_version,
                "reason": reason,
            },
            traceparent=child_of(desired.traceparent),
        )
        key = f"{REFUSED_EVENT}-{desired.version}"
        self._uplink.submit("ev", desired.device, key, encode(event), traceparent=event.traceparent)
