"""The reliability suite's frame: its two modes and the `figures` every test reports.

Modes
    bounded (default)  small counts, each test a few seconds: what CI runs.
    full               the issue's counts (20 daemon kills, 1,000 twin updates, ...).
                       `pytest tests/reliability --reliability-full`, or
                       `BATON_RELIABILITY=full pytest ...` (the option is only seen when
                       pytest is pointed at tests/reliability, since a sub-directory
                       conftest's options are registered too late otherwise; the
                       environment variable works from anywhere).

Figures
    Every test takes the `figures` fixture and records what it measured:

        def test_kill(figures):
            kills = figures.scale(ci=3, full=20)        # count for this mode, recorded
            ...
            figures.record(sent=n, acknowledged=acked, lost=0, duplicated=0)
            figures.samples("restart_to_forwarding_s", durations)   # n, p50, p99, max

    The figures of every test are printed in pytest's terminal summary and, when
    `BATON_RELIABILITY_OUT` names a file, written there as JSON (with the mode, the
    machine and each test's outcome), which is what docs/reliability.md is built from.

In the full form each test of this directory gets a pytest-timeout of an hour
(`FULL_TIMEOUT_S`) instead of the suite's two minutes.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

Value = int | float | str | bool | None

FULL_OPTION = "--reliability-full"
# The full form runs the counts: a test may take many minutes, far past the
# suite-wide pytest-timeout (pyproject.toml); this is its own bound per test.
FULL_TIMEOUT_S = 3600
FULL_ENV = "BATON_RELIABILITY"
OUT_ENV = "BATON_RELIABILITY_OUT"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        FULL_OPTION,
        action="store_true",
        default=False,
        help="run the reliability suite with the issue's full counts (slow); "
        f"same as {FULL_ENV}=full",
    )


def is_full(config: pytest.Config) -> bool:
    """True when the full form was asked for, by option or environment."""
    if os.environ.get(FULL_ENV, "").strip().lower() == "full":
        return True
    try:
        return bool(config.getoption(FULL_OPTION))
    except ValueError:  # option not registered (conftest loaded after parsing)
        return False


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figures:
    """One test's measured numbers, in the order it recorded them."""

    test: str
    full: bool
    values: dict[str, Value] = field(default_factory=dict)

    def scale(self, ci: int, full: int, name: str = "n") -> int:
        """The count for this mode (`ci` bounded, `full` with the flag), recorded as `name`."""
        count = full if self.full else ci
        self.values[name] = count
        return count

    def record(self, **values: Value) -> None:
        """Record (or overwrite) named figures: sent=..., lost=..., recovery_s=..."""
        for key, value in values.items():
            self.values[key] = round(value, 4) if isinstance(value, float) else value

    def samples(self, name: str, values: Iterable[float]) -> None:
        """Summarise a series of measurements as name_n, name_p50, name_p99, name_max."""
        data = [float(v) for v in values]
        self.values[f"{name}_n"] = len(data)
        if data:
            self.record(
                **{
                    f"{name}_p50": percentile(data, 50),
                    f"{name}_p99": percentile(data, 99),
                    f"{name}_max": max(data),
                }
            )


@dataclass
class _Report:
    figures: dict[str, Figures] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)


_REPORT_KEY = pytest.StashKey[_Report]()


def _report(config: pytest.Config) -> _Report:
    report = config.stash.get(_REPORT_KEY, None)
    if report is None:
        report = config.stash[_REPORT_KEY] = _Report()
    return report


@pytest.fixture
def reliability_full(request: pytest.FixtureRequest) -> bool:
    """True in the full form (flag or BATON_RELIABILITY=full)."""
    return is_full(request.config)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """The figures this test reports; see the module docstring."""
    fig = Figures(test=request.node.nodeid, full=is_full(request.config))
    _report(request.config).figures[fig.test] = fig
    yield fig


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not is_full(config):
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FULL_TIMEOUT_S))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    report = _report(item.config)
    if item.nodeid in report.figures or "figures" in getattr(item, "fixturenames", ()):
        if rep.when == "call" or (rep.when == "setup" and not rep.passed):
            outcome = "xfail" if hasattr(rep, "wasxfail") and rep.skipped else rep.outcome
            report.outcomes[item.nodeid] = outcome
            report.durations[item.nodeid] = round(rep.duration, 2)
        elif rep.when == "teardown" and rep.failed:
            report.outcomes[item.nodeid] = "error-in-teardown"
    return rep


def _machine() -> dict[str, Value]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.machine(),
    }


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT_KEY, None)
    if report is None or not report.figures:
        return
    mode = "full" if is_full(config) else "bounded"
    terminalreporter.section(f"reliability figures ({mode})")
    for nodeid, fig in report.figures.items():
        outcome = report.outcomes.get(nodeid, "?")
        took = report.durations.get(nodeid)
        head = f"{nodeid} [{outcome}{f', {took:.1f}s' if took is not None else ''}]"
        terminalreporter.write_line(head)
        if fig.values:
            terminalreporter.write_line(
                "    " + ", ".join(f"{k}={v}" for k, v in fig.values.items())
            )
    out = os.environ.get(OUT_ENV)
    if out:
        path = Path(out)
        doc = {
            "mode": mode,
            "machine": _machine(),
            "tests": {
                nodeid: {
                    "outcome": report.outcomes.get(nodeid),
                    "duration_s": report.durations.get(nodeid),
                    "figures": fig.values,
                }
                for nodeid, fig in report.figures.items()
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
        terminalreporter.write_line(f"figures written to {path}")
