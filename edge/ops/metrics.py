"""The daemon's counters: plain ints on the hot path, Prometheus text at scrape time.

prometheus-client's own Counter and Histogram take a lock per update; at 12k readings/s
that is measurable on a Pi, and the library itself (with the `http.server`, `wsgiref`
and `email` modules it imports) is ~2.4 MB of a gateway's 50 MB. So the hot path bumps
dict entries and a bucket array here, and `EdgeCollector.exposition()` writes the text
format (version 0.0.4, what every Prometheus scrapes) only when `/metrics` is read. The
same numbers feed `EdgeDaemon.stats()`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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
    sessions_hosted: bool | None = None  # None: session handoff is off
    sessions: int | None = None


class EdgeCollector:
    """The Prometheus view of one daemon's `EdgeMetrics` and its live gauges."""

    def __init__(self, metrics: EdgeMetrics, gauges: Callable[[], Gauges]) -> None:
        self._m = metrics
        self._gauges = gauges

    def exposition(self) -> bytes:
        """The whole scrape, in the Prometheus text format."""
        out: list[str] = []
        m = self._m
        _counter(out, "readings", "Readings by result.", ("result",), m.readings)
        _counter(out, "quarantine", "Refused payloads by reason.", ("reason",), m.quarantined)
        _counter(
            out, "commands", "Commands by origin and result.", ("origin", "result"), m.commands
        )
        _counter(out, "guard_refused", "Refused commands by reason.", ("reason",), m.refused)
        _counter(out, "errors", "Handled errors by where.", ("where",), m.errors)
        _counter(out, "rule_reloads", "Rule reloads by result.", ("result",), m.reloads)
        _counter(out, "decisions", "Reflex decisions recorded.", (), {(): m.decisions})
        _latency(out, m.latency)
        _gauges(out, self._gauges())
        return "".join(out).encode()


def _counter(
    out: list[str],
    name: str,
    doc: str,
    labels: Sequence[str],
    values: Mapping[str, int] | Mapping[tuple[str, str], int] | Mapping[tuple[()], int],
) -> None:
    family = f"baton_edge_{name}_total"
    _head(out, family, doc, "counter")
    for key, value in values.items():
        label_values = key if isinstance(key, tuple) else (key,)
        out.append(f"{family}{_labels(zip(labels, label_values, strict=True))} {_num(value)}\n")


def _latency(out: list[str], hist: LatencyHistogram) -> None:
    family = "baton_edge_reflex_latency_seconds"
    _head(out, family, "Reading receipt to command publish.", "histogram")
    running = 0
    for bound, count in zip((*LATENCY_BUCKETS_US, None), hist.counts, strict=True):
        running += count
        le = "+Inf" if bound is None else _num(bound / 1e6)
        out.append(f'{family}_bucket{{le="{le}"}} {_num(running)}\n')
    out.append(f"{family}_count {_num(running)}\n")
    out.append(f"{family}_sum {_num(hist.sum_us / 1e6)}\n")


def _gauges(out: list[str], g: Gauges) -> None:
    values: dict[str, tuple[str, float | None]] = {
        "uplink_backlog": ("Messages in the leaf store not yet at the hub.", g.backlog),
        "hub_connected": ("1 when the uplink reaches the hub.", _flag(g.hub_connected)),
        "nats_connected": ("1 when connected to the leaf.", _flag(g.nats_connected)),
        "ready": ("1 once ingest runs.", _flag(g.ready)),
        "rules": ("Rules in force.", g.rules),
        "audit_pending": ("Audit entries waiting for the disk.", g.audit_pending),
        "sessions_hosted": (
            "1 when the daemon hosts agent sessions (0: waiting for the hub).",
            _flag(g.sessions_hosted),
        ),
        "sessions": ("Agent sessions the daemon runs.", g.sessions),
    }
    for name, (doc, value) in values.items():
        if value is not None:
            family = f"baton_edge_{name}"
            _head(out, family, doc, "gauge")
            out.append(f"{family} {_num(value)}\n")


def _head(out: list[str], family: str, doc: str, kind: str) -> None:
    help_text = doc.replace("\\", r"\\").replace("\n", r"\n")
    out.append(f"# HELP {family} {help_text}\n# TYPE {family} {kind}\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return f"{{{text}}}" if text else ""


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _num(value: float) -> str:
    """A sample value as Prometheus (Go's strconv) writes it: `2.0`, `+Inf`, `1.5e+06`."""
    value = float(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to an exponent sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)
