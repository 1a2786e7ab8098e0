"""`results.json` and `results.md` of a run: every row, its reference, ratio and verdict.

The verdict comes from the row's goals (`Row.met`): ✓ every goal met, ✗ one missed,
a dash: nothing to judge (no goal, or skipped).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.bench.row import TIMES, Row
from shared.bench.runner import BenchResult


@dataclass(frozen=True, slots=True)
class Results:
    started: str
    """UTC, ISO 8601."""
    seconds: float
    quick: bool
    command: str
    machine: dict[str, Any]
    benchmarks: Sequence[BenchResult] = field(default_factory=list)


NO_VERDICT = "–"  # noqa: RUF001 - an en dash: nothing to judge


def verdict(row: Row) -> str:
    met = row.met()
    return NO_VERDICT if met is None else ("✓" if met else "✗")


def row_doc(row: Row) -> dict[str, Any]:
    return {
        "figure": row.figure,
        "unit": row.unit,
        "median": row.median,
        "p99": row.p99,
        "reference": row.reference,
        "ref_median": row.ref_median,
        "ref_p99": row.ref_p99,
        "ratio": row.ratio,
        "ratio_p99": row.ratio_p99,
        "goals": [goal.describe() for goal in row.goals],
        "met": row.met(),
        "samples": row.samples,
        "note": row.note,
        "skipped": row.skipped,
    }


def results_doc(results: Results) -> dict[str, Any]:
    return {
        "started": results.started,
        "seconds": round(results.seconds, 1),
        "quick": results.quick,
        "command": results.command,
        "machine": results.machine,
        "benchmarks": [
            {
                "name": b.name,
                "title": b.title,
                "status": b.status,
                "reason": b.reason,
                "seconds": round(b.seconds, 1),
                "rows": [row_doc(row) for row in b.rows],
            }
            for b in results.benchmarks
        ],
    }


def write_json(results: Results, path: Path) -> None:
    path.write_text(json.dumps(results_doc(results), indent=2, ensure_ascii=False) + "\n", "utf-8")


# -- Markdown --------------------------------------------------------------------------

HEADER = "| benchmark | figure | median | p99 | reference | ratio | goal | met |"
RULE = "|---|---|--:|--:|---|--:|---|:-:|"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _pair(a: float | None, b: float | None, unit: str) -> str:
    if b is None:
        return fmt(a, unit)
    if a is None:
        return f"— / {fmt(b, unit)}"
    return f"{fmt(a, '')} / {fmt(b, unit)}"


def _ratio(row: Row) -> str:
    parts = [f"{r:.2f}{TIMES}" for r in (row.ratio, row.ratio_p99) if r is not None]
    return " / ".join(parts) or "—"


def row_line(bench: str, row: Row) -> str:
    goals = "; ".join(goal.describe() for goal in row.goals) or "—"
    if row.skipped is not None:
        cells = [bench, row.figure, f"skipped: {row.skipped}", "", "", "", goals, NO_VERDICT]
    else:
        ref = (
            f"{row.reference}: {_pair(row.ref_median, row.ref_p99, row.unit)}"
            if row.reference
            else "—"
        )
        cells = [
            bench,
            row.figure,
            fmt(row.median, row.unit),
            fmt(row.p99, row.unit),
            ref,
            _ratio(row),
            goals,
            verdict(row),
        ]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def table(benchmarks: Sequence[BenchResult]) -> list[str]:
    lines = [HEADER, RULE]
    for b in benchmarks:
        if b.status != "ok":
            lines.append(
                f"| {b.name} | {b.title} | {b.status}: {b.reason} |  |  |  |  | {NO_VERDICT} |"
            )
            continue
        lines += [row_line(b.name, row) for row in b.rows]
    return lines


def machine_lines(machine: dict[str, Any]) -> list[str]:
    libs = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    load = machine.get("load_avg_start"), machine.get("load_avg_end")
    return [
        f"- CPU: {machine.get('cpu')}, {machine.get('cores')} cores ({machine.get('arch')}), "
        f"{machine.get('memory_gb')} GB RAM, {machine.get('os')}",
        f"- Python {machine.get('python')}, nats-server {machine.get('nats_server')}, "
        f"Node.js {machine.get('node')}",
        f"- Libraries: {libs}",
        f"- Load average (1/5/15 min) at start {load[0]}, at end {load[1]}",
    ]


def notes(benchmarks: Sequence[BenchResult]) -> list[str]:
    out = []
    for b in benchmarks:
        out += [f"- {b.name} · {row.figure}: {row.note}" for row in b.rows if row.note]
    return out


def markdown(results: Results) -> str:
    kind = "quick (CI smoke: timings not meaningful)" if results.quick else "full"
    lines = [
        "# baton bench results",
        "",
        f"Run {results.started} · {kind} · {results.seconds / 60:.1f} min · `{results.command}`",
        "",
        "Every ratio is baton / its reference, both measured in this run on this machine,",
        "alternating A/B. Latencies in ms; rates per second; memory in MB (10^6 bytes).",
        "",
        "## Machine",
        "",
        *machine_lines(results.machine),
        "",
        "## Results",
        "",
        *table(results.benchmarks),
    ]
    extra = notes(results.benchmarks)
    if extra:
        lines += ["", "## Notes", "", *extra]
    return "\n".join(lines) + "\n"


def write_markdown(results: Results, path: Path) -> None:
    path.write_text(markdown(results), encoding="utf-8")
