"""The gateway's half of each device twin: apply desired state, report what was applied.

`apply(desired)`:

1. refuse a version not newer than the one applied (re-reporting the applied one, so a
   cloud that missed the report converges);
2. push the desired params to the device as a `set` command, through the guard;
3. persist the applied version with synchronous=FULL;
4. report `ReportedState(applied_version=...)` up the uplink.

The command goes out before the write: a crash in between re-applies the (idempotent)
`set` after restart, whereas the other order could record as applied a state the device
never received.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from edge.actuate.actuator import Actuator
from edge.actuate.guard import TWIN_ACTION
from edge.ingest.ports import UplinkSink
from edge.store.records import TwinRecord
from edge.store.runner import AsyncStore
from shared.codec import encode
from shared.hlc import HybridLogicalClock
from shared.messages import Command, DesiredState, ReportedState, now_ms
from shared.trace import child_of

log = logging.getLogger(__name__)

# How long a device has to take a desired-state command before it is stale.
TWIN_DEADLINE_MS = 10_000


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

    def get(self, device: str) -> TwinRecord | None:
        return self._twins.get(device)

    async def apply(self, desired: DesiredState) -> bool:
        """Apply if newer; True when applied. `GuardRefused` if the guard refuses it."""
        current = self._twins.get(desired.device)
        if current is not None and desired.version <= current.applied_version:
            log.info(
                "desired v%d of %s not newer than applied v%d",
                desired.version,
                desired.device,
                current.applied_version,
                extra={"device": desired.device},
            )
            self._report(current, desired.traceparent)
            return False
        await self._actuator.execute(self._command(desired), origin="twin")
        record = TwinRecord(
            device=desired.device,
            desired_version=desired.version,
            desired=dict(desired.state),
            applied_version=desired.version,
            reported=dict(desired.state),
            updated_ms=now_ms(),
        )
        await self._store.save_twin(record)
        self._twins[desired.device] = record
        self._report(record, desired.traceparent)
        return True

    def _command(self, desired: DesiredState) -> Command:
        issued = now_ms()
        return Command(
            device=desired.device,
            gw=self._gateway,
            action=TWIN_ACTION,
            params=dict(desired.state),
            issued_ms=issued,
            deadline_ms=issued + TWIN_DEADLINE_MS,
            epoch=desired.epoch,
            source=f"twin:v{desired.version}",
            traceparent=child_of(desired.traceparent),
        )

    def _report(self, record: TwinRecord, traceparent: str) -> None:
        if self._uplink is None:
            return
        reported = ReportedState(
            device=record.device,
            gw=self._gateway,
            applied_version=record.applied_version,
            state=dict(record.reported),
            hlc=self._clock.now(),
            traceparent=child_of(traceparent),
        )
        self._uplink.submit(
            "twin",
            record.device,
            record.applied_version,
            encode(reported),
            traceparent=reported.traceparent,
        )
