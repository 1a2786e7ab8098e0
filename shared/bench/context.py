"""What every benchmark gets: the run's settings, a scratch dir, progress, and series for plots.

async def run(ctx: Context) -> list[Row]:
    n = ctx.pick(quick=20, full=2000)
    samples = await alternate(ctx.pick(quick=2, full=10), {"baton": a, "bare": b})
    ctx.latency("reflex", "baton rules-only", samples["baton"])
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LatencySeries:
    """Per-operation latencies in milliseconds, one CDF line on the benchmark's plot."""

    bench: str
    label: str
    values_ms: list[float]


@dataclass(frozen=True, slots=True)
class RateSeries:
    """(seconds since start, events per second), one line on a throughput-over-time plot."""

    bench: str
    label: str
    points: list[tuple[float, float]]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Context:
    work: Path
    """A scratch directory for configs, stores and logs; removed after the run."""
    quick: bool = False
    model: Path | None = None
    """`--model`: a GGUF for the llm benchmark (default: a tiny generated one)."""
    cache: Path | None = None
    """Where downloaded peers (Node-RED) are kept between runs."""
    echo: Callable[[str], None] = _stderr
    latencies: list[LatencySeries] = field(default_factory=list)
    rates: list[RateSeries] = field(default_factory=list)
    current: str = ""
    _t0: float = field(default_factory=time.monotonic)

    def pick(self, *, quick: T, full: T) -> T:
        """The quick (CI smoke) or the full value of a knob."""
        return quick if self.quick else full

    def say(self, message: str) -> None:
        """A progress line, prefixed with the elapsed time and the running benchmark."""
        elapsed = time.monotonic() - self._t0
        self.echo(f"[{elapsed:6.1f}s] {self.current}: {message}")

    def latency(self, label: str, values_ms: list[float]) -> None:
        self.latencies.append(LatencySeries(self.current, label, list(values_ms)))

    def rate(self, label: str, points: list[tuple[float, float]]) -> None:
        self.rates.append(RateSeries(self.current, label, list(points)))

    def scratch(self, name: str) -> Path:
        """A fresh directory under the work dir for one part of one benchmark."""
        path = self.work / (self.current or "run") / name
        path.mkdir(parents=True, exist_ok=True)
        return path


Arm = Callable[[], Awaitable[list[float]]]


async def alternate(rounds: int, arms: Mapping[str, Arm]) -> dict[str, list[float]]:
    """Run each arm once per round, in ABBA order, and pool each arm's samples.

    A neighbour's load burst then lands on both sides alike instead of on one side's
    whole run: that is what makes a ratio from a shared, noisy machine mean something.
    """
    names = list(arms)
    pooled: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            pooled[name].extend(await arms[name]())
    return pooled
