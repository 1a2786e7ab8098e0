"""Tool results as rows the model can use and sentences a person can read.

Each `summarize` function turns one tool's JSON result into the short text kept in the
conversation: the model reads it on the next round, and the rule-based agent answers
with it as it is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import JsonValue

from edge.agent.state import EdgeState
from edge.config import RuleConfig

SUMMARY_DEVICES = 8
SUMMARY_RULES = 6


def fold_rollups(rows: Iterable[Mapping[str, Any]]) -> dict[str, JsonValue]:
    """Per metric, over the rows' minutes: min, max, count-weighted mean, the newest minute."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:  # oldest first
        m = out.setdefault(row["metric"], {"min": row["min"], "max": row["max"], "sum": 0.0,
                                             "count": 0, "minutes": 0})  # fmt: skip
        m["min"], m["max"] = min(m["min"], row["min"]), max(m["max"], row["max"])
        m["sum"] += row["mean"] * row["count"]
        m["count"] += row["count"]
        m["minutes"] += 1
        m["latest"] = {"minute_ms": row["minute_ms"], "mean": row["mean"], "min": row["min"],
                       "max": row["max"]}  # fmt: skip
    for m in out.values():
        m["mean"] = round(m.pop("sum") / m["count"], 4) if m["count"] else None
    return dict(out)


def rule_dict(rule: RuleConfig) -> dict[str, JsonValue]:
    data = rule.model_dump(mode="json", exclude_none=True)
    data["limit"] = limit_text(rule)
    return data


def limit_text(rule: RuleConfig) -> str:
    """`temperature > 70 (re-arms past 65, 2 readings in a row)`."""
    subject = rule.metric
    if rule.kind == "rate":
        subject = f"|d {rule.metric}/dt|"
    elif rule.kind == "window":
        subject = f"{rule.agg}({rule.metric}, last {rule.window})"
    parts = []
    if rule.kind == "rate":
        parts.append(f"{subject} > {_num(rule.rate_per_s)}/s")
    if rule.kind != "rate" and rule.above is not None:
        parts.append(f"{subject} > {_num(rule.above)}")
    if rule.kind != "rate" and rule.below is not None:
        parts.append(f"{subject} < {_num(rule.below)}")
    text = " or ".join(parts)
    extra = [f"re-arms past {_num(rule.clear)}"] if rule.clear is not None else []
    if rule.debounce > 1:
        extra.append(f"{rule.debounce} readings in a row")
    return text + (f" ({', '.join(extra)})" if extra else "")


def decision_dict(
    row: Mapping[str, Any], action: Mapping[str, Any] | None, rule: RuleConfig | None
) -> dict[str, JsonValue]:
    return {
        "decision_id": row["decision_id"], "ts_ms": row["ts_ms"], "device": row["device"],
        "source": row["source"], "name": row["name"], "version": row["version"],
        "inputs": json.loads(row["inputs"] or "{}"), "score": row["score"],
        "threshold": row["threshold"], "action": row["action"],
        "params": json.loads(row["params"]) if row["params"] else None,
        "cmd_id": row["cmd_id"], "command_status": action["status"] if action else None,
        "command_reason": action["reason"] if action else None,
        "rule": rule_dict(rule) if rule is not None else None,
    }  # fmt: skip


# -- summaries (tool result -> text) ---------------------------------------------------


def devices(result: JsonValue) -> str:
    data = _obj(result)
    names = data.get("devices") or []
    listing = ", ".join(map(str, names)) if names else "none has sent data yet"
    return f"Devices on gateway {data.get('gateway')}: {listing}."


def recent(result: JsonValue) -> str:
    data = _obj(result)
    readings = data.get("readings") or []
    device = data.get("device")
    if not readings:
        return f"No readings from {device} in the last hour."
    if data.get("source") == "rollup":
        r = readings[0]
        return f"{device}, latest minute ({ago(r['ts_ms'])}) mean: {_metrics(r['metrics'])}."
    lines = [f"{device}, latest readings:"]
    lines += [f"- {ago(r['ts_ms'])}: {_metrics(r['metrics'])}" for r in readings]
    return "\n".join(lines)


def rollups(result: JsonValue) -> str:
    data = _obj(result)
    metrics: Mapping[str, Any] = data.get("metrics") or {}
    if not metrics:
        return f"No rollups for {data.get('device')} in the last {data.get('minutes')} min."
    lines = [f"{data.get('device')}, last {data.get('minutes')} min:"]
    for name, m in metrics.items():
        latest = m["latest"]
        lines.append(
            f"- {name}: mean {_num(m['mean'])} (min {_num(m['min'])}, max {_num(m['max'])}, "
            f"{m['count']} readings); latest minute mean {_num(latest['mean'])}"
        )
    return "\n".join(lines)


def twin(result: JsonValue) -> str:
    data = _obj(result)
    if "desired_version" not in data:
        return f"{data.get('device')} has no twin on this gateway yet."
    state = "converged" if data.get("converged") else "not converged yet"
    return (
        f"{data['device']} twin: desired v{data['desired_version']} {_json(data['desired'])}, "
        f"applied v{data['applied_version']} {_json(data['reported'])} ({state}; "
        f"updated {ago(data['updated_ms'])})."
    )


def rules(result: JsonValue) -> str:
    data = _obj(result)
    lines = ["Reflex rules in force:"] if data.get("rules") else ["No reflex rules are in force."]
    for r in data.get("rules") or []:
        lines.append(
            f"- {r['name']}{_scope(r)}: {r['limit']} → {r['action']} "
            f"{_json(r.get('params', {}))}, cooldown {_num(r['cooldown_s'])} s"
        )
    lines += [f"- model {m['name']} → {m['action']}" for m in data.get("models") or []]
    return "\n".join(lines)


def decision(result: JsonValue) -> str:
    data = _obj(result)
    if data.get("decision") is None and "decision_id" not in data:
        return f"No reflex decision recorded for {data.get('device') or 'any device'}."
    what = (
        f"{data['source']} {data['name']} v{data['version']} fired on {data['device']} "
        f"{ago(data['ts_ms'])}"
    )
    why = _why(data)
    if data.get("action"):
        status = data.get("command_status") or "recorded"
        did = f"it sent {data['action']} {_json(data.get('params') or {})} ({status})"
    else:
        did = "it sent no command"
    return f"{what}: {why}; {did}."


def actuation(result: JsonValue) -> str:
    data = _obj(result)
    return (
        f"Sent {data['action']} {_json(data['params'])} to {data['device']} through the "
        f"safety guard (command {data['cmd_id']}, epoch {data['epoch']})."
    )


async def summary(state: EdgeState) -> str:
    """The compact state every turn starts with; details come through the tools."""
    names = await state.devices()
    shown = ", ".join(names[:SUMMARY_DEVICES])
    if len(names) > SUMMARY_DEVICES:
        shown += f" and {len(names) - SUMMARY_DEVICES} more"
    rule_list = state.rules()
    rule_text = "; ".join(
        f"{r.name}: {limit_text(r)} → {r.action}" for r in rule_list[:SUMMARY_RULES]
    )
    last = await state.decisions(None, 1)
    parts = [f"Gateway {state.gateway}. Devices: {shown or 'none yet'}.",
             f"Rules: {rule_text or 'none'}."]  # fmt: skip
    if last:
        parts.append(
            f"Last reflex: {last[0]['name']} on {last[0]['device']} {ago(last[0]['ts_ms'])}."
        )
    return " ".join(parts)


def _scope(rule: Mapping[str, Any]) -> str:
    if rule.get("device"):
        return f" on {rule['device']}"
    return f" on class {rule['dclass']}" if rule.get("dclass") else ""


def _why(data: Mapping[str, Any]) -> str:
    inputs = data.get("inputs") or {}
    rule = data.get("rule")
    if data.get("source") == "model":
        score, threshold = _num(data.get("score")), _num(data.get("threshold"))
        return f"anomaly score {score} ≥ threshold {threshold}"
    if rule is None:
        return f"inputs {_metrics(inputs)} (the rule is no longer in force)"
    return f"{_metrics(inputs)} against the rule's limit {rule['limit']}"


def ago(ts_ms: int | None) -> str:
    if not ts_ms:
        return "at an unknown time"
    delta_s = max(time.time() - ts_ms / 1000, 0.0)
    clock = time.strftime("%H:%M:%S", time.gmtime(ts_ms / 1000))
    if delta_s < 90:
        return f"at {clock} UTC ({int(delta_s)} s ago)"
    if delta_s < 5400:
        return f"at {clock} UTC ({int(delta_s // 60)} min ago)"
    return f"at {time.strftime('%Y-%m-%d %H:%M', time.gmtime(ts_ms / 1000))} UTC"


def _metrics(metrics: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in metrics.items()) or "none"


def _num(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ": "), default=str)


def _obj(result: JsonValue) -> Mapping[str, Any]:
    return result if isinstance(result, dict) else {}
