"""The replica's Prometheus metrics, in a registry of its own (served at `/metrics`).

A registry per orchestrator, not the process-global one, so several replicas in one
process (tests, benchmarks) count separately and never collide on registration.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Convergence is a round trip through the edge: tens of ms on a LAN, minutes when an
# edge was offline; the buckets span both.
CONVERGENCE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class CloudMetrics:
    def __init__(self, replica: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"replica": replica}
        self.ingested = Counter(
            "baton_cloud_ingest_messages",
            "FLEET messages handled by the shared ingest consumer, by kind and outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "baton_cloud_ingest_rejected",
            "FLEET messages refused at ingest (acked with term), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.cas_conflicts = Counter(
            "baton_cloud_twin_cas_conflicts",
            "twin writes that lost a compare-and-set race and were retried",
            registry=self.registry,
        )
        self.desired_sent = Counter(
            "baton_cloud_desired_sent",
            "DesiredState messages published to gateways, by cause",
            ["cause"],
            registry=self.registry,
        )
        self.marked_offline = Counter(
            "baton_cloud_devices_marked_offline",
            "devices the reconcile loop marked offline after silence",
            registry=self.registry,
        )
        self.convergence = Histogram(
            "baton_cloud_convergence_seconds",
            "time from a desired-state change to the report of its version",
            buckets=CONVERGENCE_BUCKETS,
            registry=self.registry,
        )
        self.devices = Gauge(
            "baton_cloud_devices",
            "device twins known to this replica's read model, by state",
            ["state"],
            registry=self.registry,
        )
        self.projected = Counter(
            "baton_cloud_readmodel_messages",
            "FLEET messages projected into this replica's read model",
            registry=self.registry,
        )
        self.loop_errors = Counter(
            "baton_cloud_loop_errors",
            "unexpected errors caught and survived by a background loop",
            ["loop"],
            registry=self.registry,
        )
        self.info = Gauge(
            "baton_cloud_replica", "this replica (always 1)", ["replica"], registry=self.registry
        )
        self.info.labels(**labels).set(1)
