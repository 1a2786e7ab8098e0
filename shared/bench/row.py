"""What a benchmark reports: rows of one figure each, against a reference, read against goals.

A row's `median`/`p99` are baton's figure; `ref_median`/`ref_p99` the reference measured
in the same run (the bare library, the simulator alone, Node-RED). Ratios are always
baton / reference, so "lower is better" or "higher is better" is the goal's business:

    Row("reflex round trip, rules-only", "ms", median=0.9, p99=2.1,
        reference="bare paho echo", ref_median=0.7, ref_p99=1.3,
        goals=(Goal("ratio", "<=", 1.5), Goal("ratio_p99", "<=", 2.0)))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TIMES = "×"  # noqa: RUF001 - the multiplication sign, as in "1.5 times the reference"

Measure = Literal["median", "p99", "ratio", "ratio_p99"]
Op = Literal["<=", ">="]


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal from the issue: `measure op limit`, e.g. the p99 ratio at most 2.0."""

    measure: Measure
    op: Op
    limit: float
    unit: str = ""
    """Shown after the limit of an absolute goal (ratios show TIMES)."""

    def check(self, row: Row) -> bool | None:
        """Whether `row` meets it; None when the row lacks the value (skipped, no reference)."""
        value = row.value(self.measure)
        if value is None:
            return None
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def describe(self) -> str:
        sign = "≤" if self.op == "<=" else "≥"
        what = {"median": "p50", "p99": "p99", "ratio": "p50", "ratio_p99": "p99"}[self.measure]
        if self.measure.startswith("ratio"):
            return f"{what} {sign} {self.limit:g}{TIMES} ref"
        return f"{what} {sign} {_number(self.limit)}{(' ' + self.unit) if self.unit else ''}"


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    unit: str
    median: float | None = None
    p99: float | None = None
    reference: str = ""
    ref_median: float | None = None
    ref_p99: float | None = None
    goals: tuple[Goal, ...] = ()
    samples: int = 0
    note: str = ""
    skipped: str | None = None
    """Why there is no figure (a missing library, npm absent, a feature not landed)."""

    @property
    def ratio(self) -> float | None:
        return _ratio(self.median, self.ref_median)

    @property
    def ratio_p99(self) -> float | None:
        return _ratio(self.p99, self.ref_p99)

    def value(self, measure: Measure) -> float | None:
        if self.skipped is not None:
            return None
        values = {
            "median": self.median,
            "p99": self.p99,
            "ratio": self.ratio,
            "ratio_p99": self.ratio_p99,
        }
        return values[measure]

    def met(self) -> bool | None:
        """True when every goal is met, False when one is not, None without goals or values."""
        verdicts = [goal.check(self) for goal in self.goals]
        if not verdicts or any(v is None for v in verdicts):
            return None
        return all(verdicts)


def skipped_row(figure: str, reason: str, *goals: Goal) -> Row:
    """A row that could not be measured, saying why (its goals stay visible)."""
    return Row(figure, "", goals=goals, skipped=reason)


def _ratio(value: float | None, ref: float | None) -> float | None:
    if value is None or ref is None or ref == 0:
        return None
    return value / ref


def _number(value: float) -> str:
    if value >= 1000 and value == int(value):
        return f"{int(value):,}"
    return f"{value:g}"
