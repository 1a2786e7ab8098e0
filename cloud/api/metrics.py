"""The replica's Prometheus metrics, in a registry of its own (served at `/metrics`).

A registry per orchestrator, not the process-global one, so several replicas in one
process (tests, benchmarks) count separately and never collide on registration.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Convergence is a round trip through the edge: tens of ms on a LAN, minutes when an
# edge was offline; the buckets span both.
CONVERGENCE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class CloudMetrics:
    def __init__(self, replica: str) -> None:
        self.registry = CollectorRegistry()
        self.ingested = self._counter(
            "baton_cloud_ingest_messages",
            "FLEET messages handled by the shared ingest consumer, by kind and outcome",
            ("kind", "outcome"),
        )
        self.rejected = self._counter(
            "baton_cloud_ingest_rejected",
            "FLEET messages refused at ingest (acked with term), by reason",
            ("reason",),
        )
        self.cas_conflicts = self._counter(
            "baton_cloud_twin_cas_conflicts",
            "twin writes that lost a compare-and-set race and were retried",
        )
        self.desired_sent = self._counter(
            "baton_cloud_desired_sent", "DesiredState published to gateways, by cause", ("cause",)
        )
        self.marked_offline = self._counter(
            "baton_cloud_devices_marked_offline", "devices marked offline after silence"
        )
        self.projected = self._counter(
            "baton_cloud_readmodel_messages", "FLEET messages projected into the read model"
        )
        self.api_refused = self._counter(
            "baton_cloud_api_refused",
            "API requests refused with a 4xx or 503, by status",
            ("status",),
        )
        self.loop_errors = self._counter(
            "baton_cloud_loop_errors", "errors a background loop survived", ("loop",)
        )
        self.convergence = Histogram(
            "baton_cloud_convergence_seconds",
            "time from a desired-state change to the report of its version",
            buckets=CONVERGENCE_BUCKETS,
            registry=self.registry,
        )
        self.devices = Gauge(
            "baton_cloud_devices",
            "twins in the read model, by state",
            ["state"],
            registry=self.registry,
        )
        info = Gauge("baton_cloud_replica", "this replica", ["replica"], registry=self.registry)
        info.labels(replica).set(1)

    def _counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)
