"""The daemon's counters: plain ints on the hot path, Prometheus families at scrape time.

prometheus-client's own Counter and Histogram take a lock per update; at 12k readings/s
that is measurable on a Pi. So the hot path bumps dict entries and a bucket array here,
and `EdgeCollector` turns them into metric families only when `/metrics` is scraped.
The same numbers feed `EdgeDaemon.stats()`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

# Reflex latency (receipt to command publish) buckets, in microseconds: a rule takes
# tens of µs, an ONNX model a few hundred, a stalled loop milliseconds.
LATENCY_BUCKETS_US = (25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000)
# Recent latencies kept for the p50/p99 that `stats()` reports.
RECENT_LATENCIES = 4096


class LatencyHistogram:
    __slots__ = ("counts", "recent", "sum_us")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_US) + 1)
        self.sum_us = 0
        self.recent: deque[int] = deque(maxlen=RECENT_LATENCIES)

    def observe_us(self, us: int) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS_US, us)] += 1
        self.sum_us += us
        self.recent.append(us)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile_us(self, q: float) -> int | None:
        """The q-quantile of the recent latencies, or None before the first one."""
        if not self.recent:
            return None
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class EdgeMetrics:
    """Everything the daemon counts. Labels are plain strings (result, reason, origin)."""

    def __init__(self) -> None:
        self.readings: Counter[str] = Counter()  # ok | quarantined
        self.quarantined: Counter[str] = Counter()  # by DecodeError.reason
        self.commands: Counter[tuple[str, str]] = Counter()  # (origin, sent | refused)
        self.refused: Counter[str] = Counter()  # by GuardRefused.reason
        self.errors: Counter[str] = Counter()  # by where: publish, uplink, handler...
        self.reloads: Counter[str] = Counter()  # ok | refused
        self.decisions = 0
        self.latency = LatencyHistogram()


@dataclass(frozen=True, slots=True)
class Gauges:
    """Values read at scrape time from the parts that own them."""

    backlog: int | None
    hub_connected: bool | None
    nats_connected: bool
    ready: bool
    rules: int
    audit_pending: int


class EdgeCollector(Collector):
    """A Prometheus collector over one daemon's `EdgeMetrics` and its live gauges."""

    def __init__(self, metrics: EdgeMetrics, gauges: Callable[[], Gauges]) -> None:
        self._m = metrics
        self._gauges = gauges

    def collect(self) -> Iterable[Metric]:
        m = self._m
        yield _counter("readings", "Readings by result.", ["result"], m.readings)
        yield _counter("quarantine", "Refused payloads by reason.", ["reason"], m.quarantined)
        yield _counter(
            "commands", "Commands by origin and result.", ["origin", "result"], m.commands
        )
        yield _counter("guard_refused", "Refused commands by reason.", ["reason"], m.refused)
        yield _counter("errors", "Handled errors by where.", ["where"], m.errors)
        yield _counter("rule_reloads", "Rule reloads by result.", ["result"], m.reloads)
        decisions = CounterMetricFamily("baton_edge_decisions", "Reflex decisions recorded.")
        decisions.add_metric([], m.decisions)
        yield decisions
        yield _latency(m.latency)
        yield from _gauges(self._gauges())


def _counter(
    name: str, doc: str, labels: list[str], values: Counter[str] | Counter[tuple[str, str]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(f"baton_edge_{name}", doc, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _latency(hist: LatencyHistogram) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*LATENCY_BUCKETS_US, None), hist.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound is None else repr(bound / 1e6), running))
    family = HistogramMetricFamily(
        "baton_edge_reflex_latency_seconds", "Reading receipt to command publish."
    )
    family.add_metric([], buckets, sum_value=hist.sum_us / 1e6)
    return family


def _gauges(g: Gauges) -> Iterable[Metric]:
    values: dict[str, tuple[str, float | None]] = {
        "uplink_backlog": ("Messages in the leaf store not yet at the hub.", g.backlog),
        "hub_connected": ("1 when the uplink reaches the hub.", _flag(g.hub_connected)),
        "nats_connected": ("1 when connected to the leaf.", _flag(g.nats_connected)),
        "ready": ("1 once ingest runs.", _flag(g.ready)),
        "rules": ("Rules in force.", g.rules),
        "audit_pending": ("Audit entries waiting for the disk.", g.audit_pending),
    }
    for name, (doc, value) in values.items():
        if value is not None:
            yield GaugeMetricFamily(f"baton_edge_{name}", doc, value=value)


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)
