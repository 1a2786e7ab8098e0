"""PNG plots of a run: latency CDFs and throughput over time, one file per benchmark.

matplotlib is optional (`pip install 'baton[bench]'`); without it the run says so once
and writes the tables only.
"""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.bench.context import LatencySeries, RateSeries


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_series(
    latencies: Sequence[LatencySeries], rates: Sequence[RateSeries], path: Path
) -> None:
    """The raw series behind the plots, so they can be redrawn or compared later."""
    doc = {
        "latencies_ms": [
            {"bench": s.bench, "label": s.label, "values": s.values_ms} for s in latencies
        ],
        "rates_per_s": [{"bench": s.bench, "label": s.label, "points": s.points} for s in rates],
    }
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")


def write_plots(
    latencies: Sequence[LatencySeries], rates: Sequence[RateSeries], out: Path
) -> list[Path]:
    """Draw every series; returns the files written (none without matplotlib)."""
    if not available():
        return []
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a gateway or in CI
    import matplotlib.pyplot as plt

    written = []
    for bench, series in _group(latencies).items():
        written.append(_cdf(plt, bench, series, out / f"{bench}-latency-cdf.png"))
    for bench, lines in _group(rates).items():
        written.append(_throughput(plt, bench, lines, out / f"{bench}-throughput.png"))
    return written


def _group(series: Sequence[Any]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for s in series:
        groups[s.bench].append(s)
    return groups


def _cdf(plt: Any, bench: str, series: list[LatencySeries], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for s in series:
        values = sorted(v for v in s.values_ms if v > 0)
        if not values:
            continue
        ys = [(i + 1) / len(values) for i in range(len(values))]
        ax.plot(values, ys, label=f"{s.label} (n={len(values)})", drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("fraction of samples ≤ x")
    ax.set_title(f"{bench}: latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _throughput(plt: Any, bench: str, lines: list[RateSeries], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for s in lines:
        if s.points:
            ax.plot([p[0] for p in s.points], [p[1] for p in s.points], label=s.label)
    ax.set_xlabel("seconds")
    ax.set_ylabel("per second")
    ax.set_title(f"{bench}: throughput over time")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
