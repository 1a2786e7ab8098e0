"""Helpers of the cloud tests (imported by `conftest.py` and the test modules).

FleetPublisher   publishes on FLEET the way `edge.uplink.forwarder` does
applied(...)     a device's readings are in its twin and in the read model
metric(...)      one sample of a replica's Prometheus registry
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nats.js import JetStreamContext

from cloud.config import CloudConfig
from cloud.orchestrator import Orchestrator
from shared import codec, hlc, subjects, trace
from shared.messages import Message, Reading, ReportedState

GW = "gw1"
# Loopback round trips take milliseconds; this only bounds a broken test.
WAIT_S = 15.0

ConfigFactory = Callable[..., CloudConfig]
OrchestratorFactory = Callable[..., Awaitable[Orchestrator]]


class FleetPublisher:
    """Publishes FLEET messages as `edge.uplink.forwarder` does, with knobs for faults."""

    def __init__(self, js: JetStreamContext, gw: str = GW) -> None:
        self.js = js
        self.gw = gw
        self.clock = hlc.HybridLogicalClock()

    async def publish(
        self,
        kind: str,
        device: str,
        payload: bytes,
        key: str | int,
        *,
        stamp: int | None = None,
        msg_id: str | None = None,
        gw: str | None = None,
    ) -> int:
        """Publish one message; returns its HLC stamp."""
        gw = gw or self.gw
        stamp = self.clock.now() if stamp is None else stamp
        headers = {
            "Nats-Msg-Id": msg_id or subjects.msg_id(gw, device, kind, key),  # type: ignore[arg-type]
            "Baton-Gateway": gw,
            "Baton-Hlc": str(stamp),
            trace.HEADER: trace.new_traceparent(),
        }
        await self.js.publish(subjects.fleet(gw, kind, device), payload, headers=headers)
        return stamp

    async def reading(self, device: str, seq: int, **knobs: Any) -> int:
        value = knobs.pop("value", 20.0 + seq % 10)
        return await self.publish("r", device, encode_reading(device, seq, value), seq, **knobs)

    async def report(self, device: str, applied_version: int, state: dict[str, Any]) -> int:
        msg: Message = ReportedState(
            device=device, gw=self.gw, applied_version=applied_version, state=state
        )
        return await self.publish("twin", device, codec.encode(msg), f"v{applied_version}")

    async def status(self, device: str, online: bool, key: int) -> int:
        return await self.publish("status", device, b"online" if online else b"offline", key)


def encode_reading(device: str, seq: int, value: float = 20.0) -> bytes:
    return codec.encode(
        Reading(device=device, seq=seq, ts_ms=1_700_000_000_000 + seq, metrics={"t": value})
    )


def applied(orch: Orchestrator, device: str, count: int, gw: str = GW) -> bool:
    """`count` readings of `device` are in its twin and in this replica's read model."""
    twin = orch.readmodel.twin(gw, device)
    return (
        twin is not None
        and twin.readings == count
        and orch.readmodel.reading_count(gw, device) == count
    )


def metric(orch: Orchestrator, name: str, **labels: str) -> float:
    return orch.metrics.registry.get_sample_value(name, labels) or 0.0
