"""Desired state: the cloud writes a new version into the twin, then sends it down.

    PUT /api/devices/gw1/fan-3/desired {"fan.on": true}     (keys: shared.actions)
      └─ twins KV (CAS): desired_version 4 → 5, desired_ms = now
      └─ DOWNLINK downlink.gw1.desired.fan-3   DesiredState(version=5), Nats-Msg-Id
            └─ edge applies it, reports applied_version=5 → FLEET → ingest → converged

The KV write comes first: if the publish then fails, the twin still says what is
wanted and the reconcile loop sends it again; the other order could lose the change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Final

import nats.errors
from nats.js import JetStreamContext

from cloud.api.metrics import CloudMetrics
from cloud.errors import NotFound, PreconditionFailed
from cloud.ingest.facts import MSG_ID_HEADER, twin_key
from cloud.twins.record import TwinRecord
from cloud.twins.store import TwinStore
from shared import codec, subjects, trace
from shared.errors import TransportError
from shared.messages import DesiredState, now_ms
from shared.messages.base import Scalar

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S: Final = 5.0


class DesiredService:
    def __init__(
        self,
        js: JetStreamContext,
        store: TwinStore,
        metrics: CloudMetrics,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._js = js
        self._store = store
        self._metrics = metrics
        self._clock = clock

    async def set(
        self,
        gw: str,
        device: str,
        state: Mapping[str, Scalar],
        *,
        if_version: int | None = None,
    ) -> TwinRecord:
        """Replace the desired state of a known device; the twin with its new version."""

        def change(record: TwinRecord | None) -> tuple[TwinRecord, TwinRecord]:
            if record is None:
                raise NotFound(f"device {gw}/{device} is not known to the fleet")
            if if_version is not None and record.desired_version != if_version:
                raise PreconditionFailed(
                    f"desired version is {record.desired_version}, not {if_version}"
                )
            now = self._clock()
            new = record.model_copy(
                update={"desired": dict(state), "desired_version": record.desired_version + 1,
                        "desired_ms": now, "sent_ms": now, "sends": 1, "updated_ms": now}
            )  # fmt: skip
            return new, new

        record = await self._store.update(twin_key(gw, device), change)
        try:
            await self.send(record, "api")
        except TransportError as exc:
            # Stored but not sent: the reconcile loop sends it after `resend_after_s`.
            log.warning("desired %s v%d not sent yet: %s", record.key, record.desired_version, exc)
        return record

    async def send(self, record: TwinRecord, cause: str) -> None:
        """Publish the twin's current desired state to its gateway's DOWNLINK subject."""
        msg = DesiredState(
            device=record.device,
            gw=record.gw,
            version=record.desired_version,
            state=dict(record.desired),
            traceparent=trace.new_traceparent(),
        )
        headers = {
            # One id per (version, attempt): JetStream drops a repeat of the same send
            # inside its window, yet a deliberate re-send is a new message.
            MSG_ID_HEADER: f"{record.gw}/{record.device}/desired/{msg.version}/{record.sends}",
            trace.HEADER: msg.traceparent,
        }
        subject = subjects.downlink(record.gw, "desired", record.device)
        try:
            await self._js.publish(
                subject, codec.encode(msg), headers=headers, timeout=PUBLISH_TIMEOUT_S
            )
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise TransportError(f"publish {subject}: {exc!r}") from exc
        self._metrics.desired_sent.labels(cause).inc()
        log.info("desired %s v%d sent (%s)", record.key, msg.version, cause)
