"""`gw.diagnose`: what the gateway's own store says about one device, as an ack result.

    {"device": "pump-0", "verdict": "alerting", "last_seen_ms": 1700000040000,
     "latest": {"vib_rms": {"minute_ms": ..., "mean": 4.2, "min": 3.9, "max": 4.6, "count": 600}},
     "decisions": [{"name": "bearing", "source": "model", "score": 9.1, "ts_ms": ..., "action": ...}],
     "open_tickets": ["<ref>"], "twin": {"desired_version": 3, "applied_version": 3}}

verdict  silent    no reading in the last `SILENT_AFTER_MS` (the link or the device is down)
         alerting  a rule or model fired for it in the last `ALERT_WINDOW_MS`
         ok        neither

Runs on the store's thread (`AsyncStore.call(diagnose, device, now_ms)`); the caller
flushes the audit writer first so the newest readings and decisions are on disk.
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from edge.store import EdgeStore

# Rollups are per minute: no row in the last two minutes means no reading for over one.
SILENT_AFTER_MS = 2 * 60_000
# A firing this recent still says something about the device's state now.
ALERT_WINDOW_MS = 10 * 60_000
# Rollup minutes looked at: enough to see a trend, small enough for one ack message.
LOOKBACK_MS = 15 * 60_000
RECENT_DECISIONS = 5


def diagnose(store: EdgeStore, device: str, now_ms: int) -> dict[str, JsonValue]:
    latest = _latest_minutes(store.rollups(device, now_ms - LOOKBACK_MS))
    last_seen = max((row["minute_ms"] for row in latest.values()), default=None)
    decisions = store.decisions(device, RECENT_DECISIONS)
    tickets = [row["ref"] for row in store.tickets(device) if row["status"] == "open"]
    return {
        "device": device,
        "verdict": _verdict(last_seen, [row["ts_ms"] for row in decisions], now_ms),
        "last_seen_ms": last_seen,
        "latest": {metric: _minute(row) for metric, row in latest.items()},
        "decisions": [_decision(row) for row in decisions],
        "open_tickets": list(tickets),
        "twin": _twin(store, device),
    }


def _latest_minutes(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest rollup row of each metric (rows come oldest first)."""
    return {row["metric"]: row for row in rows}


def _minute(row: dict[str, Any]) -> JsonValue:
    return {key: row[key] for key in ("minute_ms", "mean", "min", "max", "count")}


def _decision(row: dict[str, Any]) -> JsonValue:
    return {key: row[key] for key in ("name", "source", "score", "ts_ms", "action")}


def _verdict(last_seen: int | None, fired_ms: list[int], now_ms: int) -> str:
    if last_seen is None or last_seen < now_ms - SILENT_AFTER_MS:
        return "silent"
    if any(ts >= now_ms - ALERT_WINDOW_MS for ts in fired_ms):
        return "alerting"
    return "ok"


def _twin(store: EdgeStore, device: str) -> JsonValue:
    twin = store.twins().get(device)
    if twin is None:
        return None
    return {"desired_version": twin.desired_version, "applied_version": twin.applied_version}
