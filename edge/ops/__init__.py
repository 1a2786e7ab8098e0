"""Operations: counters and their Prometheus view, the `/metrics` + `/healthz` server."""

from edge.ops.http import OpsServer
from edge.ops.metrics import EdgeCollector, EdgeMetrics, Gauges, LatencyHistogram

__all__ = ["EdgeCollector", "EdgeMetrics", "Gauges", "LatencyHistogram", "OpsServer"]
