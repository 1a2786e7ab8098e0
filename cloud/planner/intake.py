"""FLEET messages → planner triggers.

fleet.<gw>.dec.<dev>     Decision, source "model" whose score passes  → anomaly
                         Decision, source "rule", firing ≥ threshold
                         times on the site inside the window           → repeated_action
fleet.<gw>.status.<dev>  b"offline" (the device's MQTT last will)      → offline
"""

from __future__ import annotations

from nats.aio.msg import Msg

from cloud.agents.base import Trigger
from cloud.planner.config import PlannerConfig
from cloud.planner.windows import FiringWindows
from shared import codec, subjects, trace
from shared.messages import Decision, now_ms
from shared.messages.base import Scalar

OFFLINE = b"offline"


def route(subject: str) -> tuple[str, str, str] | None:
    """(gw, kind, device) of a FLEET subject, or None when it is not one."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "fleet":
        return None
    _, gw, kind, device = parts
    if not (subjects.is_valid_id(gw) and subjects.is_valid_id(device)):
        return None
    return gw, kind, device


class Intake:
    def __init__(self, cfg: PlannerConfig, windows: FiringWindows) -> None:
        self._cfg = cfg
        self._windows = windows

    async def trigger(self, msg: Msg) -> Trigger | None:
        """The trigger `msg` amounts to, if any. Raises `DecodeError` on a bad payload."""
        where = route(msg.subject)
        if where is None:
            return None
        gw, kind, device = where
        tp = _traceparent(msg)
        if kind == "status":
            return self._status(msg.data, gw, device, tp)
        if kind == "dec":
            decision = codec.decode(msg.data, Decision)
            if decision.source == "model":
                return self._anomaly(decision, gw, tp)
            return await self._repeated(decision, gw, tp)
        return None

    def _status(self, data: bytes, gw: str, device: str, tp: str | None) -> Trigger | None:
        if data.strip().lower() != OFFLINE:
            return None
        return Trigger("offline", gw, device, f"{device} went offline", traceparent=tp)

    def _anomaly(self, decision: Decision, gw: str, tp: str | None) -> Trigger | None:
        floor = self._cfg.anomaly_min_score
        if floor is None:
            floor = decision.threshold
        if floor is not None and (decision.score is None or decision.score < floor):
            return None
        detail: dict[str, Scalar] = {
            "model": decision.name,
            "version": decision.version,
            "score": decision.score,
        }
        why = f"model {decision.name} scored {decision.score} on {decision.device}"
        return Trigger("anomaly", gw, decision.device, why, detail, traceparent=tp)

    async def _repeated(self, decision: Decision, gw: str, tp: str | None) -> Trigger | None:
        firings = await self._windows.record(decision, now_ms())
        hot = firings.hot(self._cfg.repeated_action_threshold)
        # A redelivered decision (not new) still triggers: if planning failed the first
        # time, this is the retry; if it did not, the planner's dedupe answers.
        if decision.device not in hot:
            return None
        count = firings.counts[decision.device]
        why = f"rule {decision.name} fired {count} times on {decision.device}"
        detail: dict[str, Scalar] = {"rule": decision.name, "count": count}
        return Trigger("repeated_action", gw, decision.device, why, detail, hot, traceparent=tp)


def _traceparent(msg: Msg) -> str | None:
    """The trace the gateway forwarded (header), so the plan joins the reading's trace."""
    value = (msg.headers or {}).get(trace.HEADER)
    return value if value and trace.is_valid(value) else None
